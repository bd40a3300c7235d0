"""The semantic checks of the version-2 operator and wall keys (``diffusion``, ``weight``,
``langevin``, ``domain.boundary``; ../shared/problem-format.md).

Every form the contract names is parsed and checked here (names, sizes, symmetry, signs),
so a file is told what is wrong with it at the key that is wrong. The forms no kind trains
yet are then refused at their key, saying what works today: a scalar or matrix
``diffusion`` and a ``weight`` (not with a drift; Robin faces not with a matrix), Dirichlet
and Neumann walls (per face on a box), Robin faces on a box, and a Langevin generator on
the whole space. Positive definiteness and positivity are checked on samples of the domain
when the settings are derived (``kinds/schrodinger_checks.py``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sympy as sp

from nsvd_cli.spec.scope import ExpressionScope, check_expression
from nsvd_cli.spec.yaml_reader import Key

Found = list[tuple[Key, str]]

NOT_YET = "not supported yet"
LANGEVIN_EXCLUDES = ("kinetic", "diffusion", "potential", "weight", "drift")
LANGEVIN_WALLS = (
    f"a Langevin generator on a region, or with walls that differ, is {NOT_YET}: on a box "
    "its walls are all `dirichlet` (absorbing) or all `neumann` (reflecting)"
)


def langevin_domain_issues(domain: Mapping[str, Any]) -> Found:
    """A Langevin generator's domain: the whole space, or a box whose walls are all
    absorbing (``dirichlet``: phi = 0) or all reflecting (``neumann``: d phi/dn = 0, a Robin
    condition on the transformed functions, ``spec/langevin.py``)."""
    if "region" in domain or domain.get("boundary", "dirichlet") not in ("dirichlet", "neumann"):
        return [(("domain",), LANGEVIN_WALLS)]
    return []


def operator_form_issues(operator: Mapping[str, Any], scope: ExpressionScope) -> Found:
    """``diffusion``, ``weight`` and ``langevin`` of a differential operator."""
    found: Found = []
    if "langevin" in operator:
        found.extend(_langevin_issues(operator, scope))
    if "diffusion" in operator:
        if "kinetic" in operator:
            found.append(
                (("operator", "diffusion"), "give diffusion or kinetic, not both "
                 "(kinetic: k is diffusion: k)")
            )
        found.extend(_diffusion_issues(operator["diffusion"], scope))
    if operator.get("weight") is not None:
        found.extend(_weight_issues(operator["weight"], scope))
    if operator.get("drift") and not found:
        found.extend(_with_drift_issues(operator, scope))
    return found


def _with_drift_issues(operator: Mapping[str, Any], scope: ExpressionScope) -> Found:
    """A drift's kind (singular values of H + b . grad) has -kappa Laplacian + V only."""
    found: Found = []
    diffusion = operator.get("diffusion")
    if diffusion is not None and (
        isinstance(diffusion, list) or _varies(scope.over_space(diffusion), scope)
    ):
        found.append((("operator", "diffusion"), f"a varying or matrix diffusion with a drift "
                      f"is {NOT_YET} (a constant scalar is)"))
    weight = operator.get("weight")
    if weight is not None and sp.simplify(scope.over_space(weight) - 1) != 0:
        found.append((("operator", "weight"), f"a weight with a drift is {NOT_YET}"))
    return found


def _varies(expr: sp.Expr, scope: ExpressionScope) -> bool:
    """Whether a parsed expression depends on the coordinates (not only on parameters)."""
    return bool({str(s) for s in expr.free_symbols} & set(scope.coordinates))


def _langevin_issues(operator: Mapping[str, Any], scope: ExpressionScope) -> Found:
    found: Found = []
    for name in LANGEVIN_EXCLUDES:
        if name in operator:
            found.append((("operator", name), "langevin replaces the other operator keys"))
    langevin = operator["langevin"]
    if not isinstance(langevin, Mapping):
        return found  # the structural pass reports the shape
    if "potential" in langevin:
        check_expression(("operator", "langevin", "potential"), langevin["potential"],
                         scope.over_space, found)
    key: Key = ("operator", "langevin", "temperature")
    temperature = check_expression(key, langevin.get("temperature", 1), scope.kinetic, found)
    if temperature is not None and not temperature > 0:
        found.append((key, f"must be > 0, got {temperature:g}"))
    return found


def _diffusion_issues(diffusion: Any, scope: ExpressionScope) -> Found:
    found: Found = []
    key: Key = ("operator", "diffusion")
    if not isinstance(diffusion, list):
        value = check_expression(key, diffusion, scope.over_space, found)
        if value is None:
            return found
        if _varies(value, scope):
            return found  # positive on the domain: checked on samples (module docstring)
        constant = check_expression(key, diffusion, scope.kinetic, found)
        if constant is not None and not constant > 0:
            found.append((key, f"must be > 0, got {constant:g}"))
        return found
    d = len(scope.coordinates)
    if len(diffusion) != d or any(not isinstance(r, list) or len(r) != d for r in diffusion):
        return [(key, f"a matrix diffusion is {d} x {d} (one row and column per coordinate)")]
    entries = [
        [check_expression((*key, i, j), a, scope.over_space, found) for j, a in enumerate(row)]
        for i, row in enumerate(diffusion)
    ]
    if found or any(a is None for row in entries for a in row):
        return found  # (an entry that is no expression: the structural pass says so)
    for i in range(d):
        for j in range(i + 1, d):
            if sp.simplify(entries[i][j] - entries[j][i]) != 0:
                found.append(((*key, i, j), f"the matrix must be symmetric: entry [{i}][{j}] "
                              f"differs from [{j}][{i}]"))
    return found


def _weight_issues(weight: Any, scope: ExpressionScope) -> Found:
    found: Found = []
    key: Key = ("operator", "weight")
    value = check_expression(key, weight, scope.over_space, found)
    if value is not None and not _varies(value, scope):
        constant = check_expression(key, weight, scope.kinetic, found)
        if constant is not None and not constant > 0:
            found.append((key, f"must be > 0, got {constant:g}"))
    return found


def boundary_issues(
    domain: Mapping[str, Any], scope: ExpressionScope, drift: bool, matrix: bool = False
) -> Found:
    """``boundary`` of a box (per coordinate or face) or of a region (one condition).
    Trained today: ``dirichlet`` and ``neumann`` walls, per face on a box, and Robin faces
    on a box or a planar region's edge (Neumann and Robin without a drift, Robin without a
    matrix diffusion)."""
    boundary = domain.get("boundary", "dirichlet")
    found: Found = []
    key: Key = ("domain", "boundary")
    named: set[str] = set()
    if isinstance(boundary, Mapping) and "robin" not in boundary:
        box = domain.get("box")
        # str(): a YAML key can be null or a number (the box's own check names it).
        names = [str(n) for n in box] if isinstance(box, Mapping) else list(scope.coordinates)
        if len(boundary) < len(names):
            named.add("dirichlet")  # the coordinates not named keep dirichlet walls
        for name, axis in boundary.items():
            if name not in names:
                found.append(((*key, name), f"not a coordinate of the box ({', '.join(names)})"))
                continue
            faces = axis if isinstance(axis, list) else [axis, axis]
            if "periodic" in faces and faces[0] != faces[1]:
                found.append(((*key, name), "periodic joins both faces: write `periodic` once"))
            for face in faces:
                found.extend(_wall_issues((*key, name), face, scope, named, True))
    elif not ("region" in domain and boundary == "periodic"):  # the structural pass says so
        # A region's Robin term needs its edge meshed, which nsvd does in the plane only.
        planar = "box" in domain or len(scope.coordinates) == 2
        found.extend(_wall_issues(key, boundary, scope, named, planar))
    if not found and named & {"neumann", "robin"} and drift:
        found.append((key, f"neumann or Robin walls with a drift are {NOT_YET}"))
    if not found and "robin" in named and matrix:
        found.append((key, f"Robin walls with a matrix diffusion are {NOT_YET} (with a "
                      "scalar one they are; Neumann walls take the conormal condition)"))
    return _first_of_each(found)


def _wall_issues(
    key: Key, condition: Any, scope: ExpressionScope, named: set[str], meshed: bool
) -> Found:
    if isinstance(condition, Mapping):
        found: Found = []
        check_expression((*key, "robin"), condition.get("robin"), scope.kinetic, found)
        if not found and not meshed:
            found.append((key, f"Robin walls on a region in {len(scope.coordinates)} "
                          f"dimensions are {NOT_YET} (on a box, and on a planar region, "
                          "they are)"))
        named.add("robin")
        return found
    if condition == "periodic":
        return [(key, f"periodic walls are {NOT_YET} (dirichlet and neumann walls are)")]
    if isinstance(condition, str):
        named.add(condition)
    return []


def _first_of_each(found: Found) -> Found:
    """One message per key (a per-face pair would otherwise say the same thing twice)."""
    seen: dict[Key, str] = {}
    for key, message in found:
        seen.setdefault(key, message)
    return list(seen.items())

