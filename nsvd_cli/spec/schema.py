"""The JSON Schema of a problem file, generated from the pydantic models (``nsvd schema``).

Editors use it for completion and early warnings (the YAML language server reads a
``# yaml-language-server: $schema=...`` comment). It describes the shape only: names used
in expressions, expression syntax and the cross-key rules are checked by ``nsvd check``.

The models validate their fields with plain validators (for one-line error messages), which
pydantic cannot see into; ``_SchemaGenerator`` maps each validator back to the JSON type
it accepts, reading its bounds from the validator itself so that the two cannot drift.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from nsvd_cli.spec import domains
from nsvd_cli.spec import fields as spec_fields
from nsvd_cli.spec.models import Operator, Problem, Reference

DIALECT = "https://json-schema.org/draft/2020-12/schema"

_NUMBER = {"type": "number"}
_EXPRESSION = {
    "type": ["number", "string"],
    "description": "A number or an expression string in SymPy syntax (** for powers).",
}

# The validators that take no settings, by function.
_FIXED: dict[Callable[..., Any], dict[str, Any]] = {
    spec_fields._expression_text: _EXPRESSION,
    spec_fields.parameter_value: {
        "type": ["number", "string"],
        "description": "A number or a constant expression (e.g. 'sqrt(2)').",
    },
    spec_fields._string: {"type": "string"},
    spec_fields._problem_name: {
        "type": "string",
        "pattern": "^[A-Za-z0-9_.-]+$",
        "description": "Letters, digits, '_', '.', '-'; used in run folder names.",
    },
    spec_fields._interval: {
        "type": "array",
        "items": _NUMBER,
        "minItems": 2,
        "maxItems": 2,
        "description": "[lo, hi] with lo < hi.",
    },
    spec_fields._integer_interval: {
        "type": "array",
        "items": {"type": "integer"},
        "minItems": 2,
        "maxItems": 2,
        "description": "An inclusive integer range [lo, hi].",
    },
}

_WALL = {
    "oneOf": [
        {"enum": ["dirichlet", "neumann", "periodic"]},
        {
            "type": "object",
            "properties": {"robin": _EXPRESSION},
            "required": ["robin"],
            "additionalProperties": False,
            "description": "du/dn + alpha u = 0, n the outward normal.",
        },
    ]
}
_FIXED[domains.wall_condition] = _WALL
_FIXED[domains.region_condition] = {
    "oneOf": [{"enum": ["dirichlet", "neumann"]}, _WALL["oneOf"][1]],
    "description": "One condition on the region's whole edge.",
}
_FIXED[domains.boundary_conditions] = {
    "oneOf": [
        _WALL,
        {
            "type": "object",
            "additionalProperties": {
                "oneOf": [_WALL, {"type": "array", "items": _WALL, "minItems": 2, "maxItems": 2}]
            },
            "description": "Per coordinate: one condition, or [low face, high face].",
        },
    ],
    "description": "Conditions on the box's walls (default dirichlet).",
}
_FIXED[spec_fields.diffusion_form] = {
    "oneOf": [
        _EXPRESSION,
        {"type": "array", "items": {"type": "array", "items": _EXPRESSION}},
    ],
    "description": "-div(A grad u): a scalar, or a symmetric d x d matrix of expressions.",
}

# Contract keys whose models carry no description of their own (from the problem format).
_DESCRIPTIONS: dict[tuple[str, str], str] = {
    ("Problem", "name"): "Required. The problem's name, used in run folder names.",
    ("Problem", "description"): "Free text.",
    ("Problem", "coordinates"): "Required. The coordinate names; d = their count (1 to 64).",
    ("Problem", "parameters"): "Named constants usable in every expression.",
    ("Problem", "operator"): "H = -kinetic * Laplacian + potential (or an integral kernel).",
    ("Problem", "domain"): (
        "'whole-space' (default), {box: {x: [lo, hi], ...}}, "
        "{region: 'expr > 0', bounds: {...}} or {gaussian: {scale: s}}."
    ),
    ("Problem", "modes"): "Required. How many eigenpairs (or singular triples) to compute.",
    ("Problem", "want"): "Which end of the spectrum; derived from the operator when absent.",
    ("Problem", "solver"): "Training settings; every key has a default derived from the problem.",
    ("Problem", "network"): "Network architecture; every key has a default.",
    ("Problem", "reference"): "What `nsvd eval` compares against.",
    ("Operator", "kinetic"): "Coefficient of -Laplacian (default 1/2).",
    ("Operator", "potential"): "V over the coordinates and parameters (default 0).",
    ("Operator", "drift"): "b in b . grad, one expression per coordinate.",
    ("Operator", "weight"): "rho(x) > 0: solve H u = lambda * rho * u.",
    ("Operator", "langevin"): "The generator T Laplacian - grad U . grad (replaces the rest).",
    ("Operator", "kernel"): "k(x, y) of an integral operator (over coordinates and inputs).",
    ("Operator", "input_coordinates"): "The integral operator's input coordinate names.",
    ("Operator", "input_domain"): "The input side's measure (default: domain).",
    ("Reference", "eigenvalues"): "The reference spectrum as a list.",
    ("Reference", "eigenvalue"): "Closed form over the quantum numbers.",
    ("Reference", "quantum_numbers"): "Inclusive integer ranges, {n: [0, 10], ...}.",
    ("Reference", "where"): "Keep only the states where this holds.",
    ("Reference", "eigenfunction"): "Each state's function (any normalisation).",
}


def _closure(function: Callable[..., Any]) -> dict[str, Any]:
    """The settings a validator factory baked into ``function`` (``ge``, ``even``, ...)."""
    return dict(inspect.getclosurevars(function).nonlocals)


def _validator_schema(function: Callable[..., Any]) -> dict[str, Any] | None:
    if function in _FIXED:
        return dict(_FIXED[function])
    qualname = getattr(function, "__qualname__", "")
    if qualname == f"{spec_fields.integer_type.__name__}.<locals>.validate":
        bounds = _closure(function)
        out: dict[str, Any] = {"type": "integer"}
        if bounds.get("ge") is not None:
            out["minimum"] = bounds["ge"]
        if bounds.get("le") is not None:
            out["maximum"] = bounds["le"]
        if bounds.get("even"):
            out["multipleOf"] = 2
        return out
    if qualname == f"{spec_fields._number_type.__name__}.<locals>.validate":
        bounds = _closure(function)
        out = {"type": "number"}
        for key, name in (("gt", "exclusiveMinimum"), ("ge", "minimum"), ("le", "maximum")):
            if bounds.get(key) is not None:
                out[name] = bounds[key]
        return out
    return None


class _SchemaGenerator(GenerateJsonSchema):
    def function_plain_schema(
        self, schema: core_schema.PlainValidatorFunctionSchema
    ) -> JsonSchemaValue:
        found = _validator_schema(schema["function"]["function"])
        if found is None:
            # A new field type: say so in the tests, rather than an accept-all {}.
            raise TypeError(f"no JSON schema for the validator {schema['function']}")
        return found


def problem_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a problem file."""
    schema = Problem.model_json_schema(schema_generator=_SchemaGenerator)
    defs = {"Problem": schema, **schema.get("$defs", {})}
    models: dict[str, type[BaseModel]] = {
        "Problem": Problem, "Operator": Operator, "Reference": Reference,
    }
    for (model, key), text in _DESCRIPTIONS.items():
        if models[model].model_fields[key].description is None:  # the model's own wins
            defs[model]["properties"][key]["description"] = text
    return {
        "$schema": DIALECT,
        **schema,
        "title": "nsvd problem file",
        "description": (
            "An operator, its domain and how many modes to compute (docs/problem-format.md). "
            "Checked in full by `nsvd check FILE`."
        ),
    }
