"""The domain forms of a problem file (whole space, box, region, Gaussian measure) and the
boundary conditions on their walls (version-2 keys of the problem format)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, PlainValidator, Tag

from nsvd_cli.spec.fields import (
    Interval,
    PositiveNumber,
    Text,
    _expression_text,
    _fail,
    show,
)


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_assignment=False)


NAMED_WALLS = ("dirichlet", "neumann", "periodic")
WALL_FORMS = "expected dirichlet, neumann, periodic or {robin: alpha}"


def wall_condition(value: Any) -> str | dict[str, float | str]:
    """One wall's condition: a name, or ``{robin: alpha}`` (du/dn + alpha u = 0, n the
    outward normal; alpha a constant expression, checked by the semantic pass)."""
    if isinstance(value, str) and value in NAMED_WALLS:
        return value
    if isinstance(value, Mapping) and list(value) == ["robin"]:
        return {"robin": _expression_text(value["robin"])}
    raise _fail("wall_form", f"{WALL_FORMS}, got {show(value)}")


def boundary_conditions(value: Any) -> str | dict[str, Any]:
    """``boundary:`` of a box: one condition for every wall, or per coordinate one
    condition (both faces) or a list [low face, high face]. Coordinate names are checked
    against the box by the semantic pass."""
    if not isinstance(value, Mapping) or list(value) == ["robin"]:
        return wall_condition(value)
    axes: dict[str, Any] = {}
    for name, axis in value.items():
        if not isinstance(name, str):
            raise _fail("boundary_form", f"keys must be coordinate names, got {show(name)}")
        if isinstance(axis, list):
            if len(axis) != 2:
                raise _fail(
                    "boundary_form",
                    f"{name}: expected one condition or [low face, high face], got {show(axis)}",
                )
            axes[name] = [wall_condition(face) for face in axis]
        else:
            axes[name] = wall_condition(axis)
    return axes


def region_condition(value: Any) -> str | dict[str, float | str]:
    """A region's one condition on its whole edge (a region has no periodic axis)."""
    condition = wall_condition(value)
    if condition == "periodic":
        raise _fail("wall_form", "a region's edge is dirichlet, neumann or {robin: alpha}")
    return condition


Boundary = Annotated[str | dict[str, Any], PlainValidator(boundary_conditions)]
RegionBoundary = Annotated[str | dict[str, Any], PlainValidator(region_condition)]


class BoxDomain(SpecModel):
    """A box with zero (Dirichlet) boundary values on its faces (for an integral operator:
    Lebesgue measure on the box, no boundary condition)."""

    box: dict[str, Interval]
    boundary: Boundary = "dirichlet"


class GaussianScale(SpecModel):
    scale: PositiveNumber


class GaussianDomain(SpecModel):
    """The Gaussian measure N(0, scale^2 I) (integral operators only)."""

    gaussian: GaussianScale


def _input_domain_tag(value: Any) -> str | None:
    if isinstance(value, GaussianDomain) or (isinstance(value, Mapping) and "gaussian" in value):
        return "gaussian"
    if isinstance(value, BoxDomain) or (isinstance(value, Mapping) and "box" in value):
        return "box"
    return None


INPUT_DOMAIN_FORMS = "expected {box: {...}} or {gaussian: {scale: s}}"

InputDomain = Annotated[
    Annotated[BoxDomain, Tag("box")] | Annotated[GaussianDomain, Tag("gaussian")],
    Discriminator(
        _input_domain_tag,
        custom_error_type="input_domain_form",
        custom_error_message=INPUT_DOMAIN_FORMS,
    ),
]


class RegionDomain(SpecModel):
    """The set where ``region`` > 0, inside ``bounds``; zero boundary values on its edge."""

    region: Text
    bounds: dict[str, Interval]
    boundary: RegionBoundary = "dirichlet"


def _domain_tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "whole-space"
    if isinstance(value, GaussianDomain) or (isinstance(value, Mapping) and "gaussian" in value):
        return "gaussian"
    if isinstance(value, RegionDomain) or (isinstance(value, Mapping) and "region" in value):
        return "region"
    if isinstance(value, BoxDomain) or (isinstance(value, Mapping) and "box" in value):
        return "box"
    return None


DOMAIN_FORMS = (
    "expected 'whole-space', {box: {...}}, {region: '...', bounds: {...}} or {gaussian: {scale: s}}"
)
DOMAIN_TAGS = {
    "whole-space": None,
    "box": BoxDomain,
    "region": RegionDomain,
    "gaussian": GaussianDomain,
}

Domain = Annotated[
    Annotated[Literal["whole-space"], Tag("whole-space")]
    | Annotated[BoxDomain, Tag("box")]
    | Annotated[RegionDomain, Tag("region")]
    | Annotated[GaussianDomain, Tag("gaussian")],
    Discriminator(_domain_tag, custom_error_type="domain_form", custom_error_message=DOMAIN_FORMS),
]
