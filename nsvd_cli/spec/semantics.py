"""The semantic pass over a problem: names and expressions, beyond what pydantic checks.

The pass runs on raw YAML data, checking whatever parts have the right shape, so that one
run reports every problem in a file together with the structural ones.  The same
:class:`ExpressionScope` parses expressions here and in the :class:`~nsvd_cli.spec.Problem`
accessors, so a file that passes the checks parses the same way later.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from pydantic_core import PydanticCustomError

from nsvd_cli.spec.fields import integer_value, parameter_value, quote, show
from nsvd_cli.spec.operator_forms import (
    boundary_issues,
    langevin_domain_issues,
    operator_form_issues,
)
from nsvd_cli.spec.scope import (
    MANY_STATES,
    MAX_PARAMETERS,
    MAX_STATES,
    ExpressionScope,
    Found,
    check_expression,
    check_limits,
    check_names,
    state_count,
)
from nsvd_cli.spec.yaml_reader import Key

# All expression text of one file together: SymPy may spend ~0.1 ms per character on
# hostile text (exact trigonometry, polynomial expansion), so this bounds a check to well
# under a second.  The shipped problems use at most ~1700.
MAX_EXPRESSION_TEXT = 6000
_OPERATOR_EXPRESSIONS = ("kinetic", "potential", "kernel")
_REFERENCE_EXPRESSIONS = (
    "eigenvalue",
    "where",
    "eigenfunction",
    "singular_value",
    "left_function",
    "right_function",
)


def _expression_texts(data: Mapping[str, Any]) -> Iterator[tuple[Key, Any]]:
    """Every expression string of the raw data, with its key path."""

    def section(name: str) -> Mapping[Any, Any]:
        value = data.get(name)
        return value if isinstance(value, Mapping) else {}

    for name, value in section("parameters").items():
        yield ("parameters", str(name)), value
    operator = section("operator")
    for name in _OPERATOR_EXPRESSIONS:
        yield ("operator", name), operator.get(name)
    drift = operator.get("drift")
    for i, value in enumerate(drift if isinstance(drift, list) else []):
        yield ("operator", "drift", i), value
    yield ("domain", "region"), section("domain").get("region")
    reference = section("reference")
    for name in _REFERENCE_EXPRESSIONS:
        yield ("reference", name), reference.get(name)


def expression_budget_issue(data: Mapping[str, Any]) -> tuple[Key, str] | None:
    """The expression where the file's expression text passes ``MAX_EXPRESSION_TEXT``."""
    total = 0
    for key, text in _expression_texts(data):
        if isinstance(text, str):
            total += len(text)
            if total > MAX_EXPRESSION_TEXT:
                return key, (
                    "the expressions of this file are too long together "
                    f"(more than {MAX_EXPRESSION_TEXT} characters)"
                )
    return None


def semantic_issues(data: Mapping[str, Any]) -> Found:
    """Names and expressions, checked on whatever parts of the raw data have the right shape."""
    found: Found = []
    raw_coordinates = data.get("coordinates")
    coordinates: list[str] = []
    if isinstance(raw_coordinates, list):
        coordinates = [c for c in raw_coordinates if isinstance(c, str)]
        positions = {
            c: i for i, c in reversed(list(enumerate(raw_coordinates))) if isinstance(c, str)
        }
        # Point duplicates at their second occurrence.
        for i, c in enumerate(raw_coordinates):
            if isinstance(c, str) and positions[c] != i:
                found.append((("coordinates", i), f"duplicate coordinate {quote(c)}"))
        found.extend(
            check_names(
                dict.fromkeys(coordinates),
                lambda c: ("coordinates", positions[c]),
                "coordinate",
                {},
            )
        )

    raw_parameters = data.get("parameters")
    parameter_names: list[str] = []
    parameters: dict[str, float] = {}
    if isinstance(raw_parameters, Mapping):
        taken = dict.fromkeys(coordinates, "coordinate")
        found.extend(check_names(raw_parameters, lambda p: ("parameters", p), "parameter", taken))
        # Past the limit (a structural error) the names would only slow every parse down.
        parameter_names = [p for p in raw_parameters if isinstance(p, str)][:MAX_PARAMETERS]
        for name in parameter_names:
            try:
                parameters[name] = parameter_value(raw_parameters[name])
            except PydanticCustomError:
                continue  # reported by the structural pass
    scope = ExpressionScope(coordinates, parameter_names, parameters)
    operator = data.get("operator")
    operator = operator if isinstance(operator, Mapping) else {}
    singular = operator.get("kernel") is not None
    if singular:
        scope = _integral_issues(data, operator, scope, found)
    else:
        _differential_issues(data, operator, scope, found)

    want = data.get("want")
    drift = bool(operator.get("drift"))
    if isinstance(want, str):
        if singular and want != "largest-singular":
            found.append(
                (
                    ("want",),
                    "an integral operator (operator.kernel) computes 'largest-singular' values",
                )
            )
        elif not singular and want == "largest-singular":
            found.append(
                (("want",), "'largest-singular' needs an integral operator (operator.kernel)")
            )
        elif drift and want == "lowest":
            found.append(
                (
                    ("want",),
                    "a drift makes the operator non-self-adjoint (complex eigenvalues); "
                    "use want: smallest-singular",
                )
            )
    singular_values = singular or drift or want == "smallest-singular"
    if not singular:
        scope = replace(scope, input_coordinates=scope.coordinates)

    reference = data.get("reference")
    if isinstance(reference, Mapping):
        found.extend(_reference_issues(reference, scope, singular_values))
    return found


def _differential_issues(
    data: Mapping[str, Any], operator: Mapping[str, Any], scope: ExpressionScope, found: Found
) -> None:
    if "kinetic" in operator:
        key: Key = ("operator", "kinetic")
        value = check_expression(key, operator["kinetic"], scope.kinetic, found)
        if value is not None and not value > 0:
            found.append((key, f"kinetic must be > 0, got {value:g}"))
    if "potential" in operator:
        check_expression(("operator", "potential"), operator["potential"], scope.over_space, found)
    drift = operator.get("drift")
    if isinstance(drift, list):
        for i, b in enumerate(drift):
            check_expression(("operator", "drift", i), b, scope.over_space, found)
        if len(drift) != len(scope.coordinates):
            found.append(
                (
                    ("operator", "drift"),
                    f"needs one component per coordinate ({len(scope.coordinates)}), "
                    f"got {len(drift)}",
                )
            )
    for name in ("input_coordinates", "input_domain"):
        if operator.get(name) is not None:
            found.append((("operator", name), "only for an integral operator (operator.kernel)"))
    found.extend(operator_form_issues(operator, scope))
    domain = data.get("domain")
    if "langevin" in operator and isinstance(domain, Mapping):
        found.extend(langevin_domain_issues(domain))
    coordinates = list(scope.coordinates)
    if isinstance(domain, Mapping):
        if "box" in domain or "region" in domain:
            found.extend(boundary_issues(domain, scope, bool(operator.get("drift")),
                                         isinstance(operator.get("diffusion"), list)))
        if "region" in domain:
            check_expression(("domain", "region"), domain["region"], scope.over_space, found)
            check_limits(("domain", "bounds"), domain.get("bounds"), coordinates, found)
        elif "box" in domain:
            check_limits(("domain", "box"), domain.get("box"), coordinates, found)
        elif "gaussian" in domain:
            found.append(
                (
                    ("domain",),
                    "a gaussian domain is the measure of an integral "
                    "operator (operator.kernel); a Hamiltonian lives in whole-space, a "
                    "box or a region",
                )
            )


def _integral_issues(
    data: Mapping[str, Any], operator: Mapping[str, Any], scope: ExpressionScope, found: Found
) -> ExpressionScope:
    """Checks of an integral operator; returns the scope with its input coordinates."""
    for name in ("kinetic", "potential", "drift", "diffusion", "weight", "langevin"):
        if name in operator:
            found.append(
                (
                    ("operator", name),
                    "an integral operator (operator.kernel) has no kinetic or potential term",
                )
            )
    domain = data.get("domain")
    if isinstance(domain, Mapping) and "boundary" in domain:
        found.append((("domain", "boundary"), "an integral operator's domain has no walls"))
    coordinates = list(scope.coordinates)
    raw_inputs = operator.get("input_coordinates")
    inputs: list[str] = []
    if raw_inputs is None:
        found.append(
            (
                ("operator",),
                "an integral operator needs 'input_coordinates' (the names of y in kernel(x, y))",
            )
        )
    elif isinstance(raw_inputs, list):
        inputs = [c for c in raw_inputs if isinstance(c, str)]
        positions = {c: i for i, c in reversed(list(enumerate(raw_inputs))) if isinstance(c, str)}
        taken = {
            **dict.fromkeys(scope.parameters, "parameter"),
            **dict.fromkeys(coordinates, "coordinate"),
        }
        found.extend(
            check_names(
                inputs,
                lambda c: ("operator", "input_coordinates", positions[c]),
                "input coordinate",
                taken,
            )
        )
    scope = replace(scope, input_coordinates=inputs)
    check_expression(("operator", "kernel"), operator.get("kernel"), scope.kernel, found)

    domain = data.get("domain", "whole-space")
    if isinstance(domain, Mapping) and "box" in domain:
        check_limits(("domain", "box"), domain.get("box"), coordinates, found)
    elif not (isinstance(domain, Mapping) and "gaussian" in domain):
        found.append(
            (
                ("domain",),
                "an integral operator needs a measure: {box: {...}} "
                "(Lebesgue measure on the box) or {gaussian: {scale: s}}",
            )
        )
    input_domain = operator.get("input_domain")
    if isinstance(input_domain, Mapping) and "box" in input_domain:
        check_limits(("operator", "input_domain", "box"), input_domain.get("box"), inputs, found)
    elif input_domain is None and isinstance(domain, Mapping) and "box" in domain:
        if inputs and len(inputs) != len(coordinates):
            found.append(
                (
                    ("operator", "input_domain"),
                    "missing: the input side has "
                    f"{len(inputs)} coordinates and the domain {len(coordinates)}, so "
                    "the domain cannot stand for both sides",
                )
            )
    return scope


_EIGEN_KEYS = ("eigenvalues", "eigenvalue", "eigenfunction")
_SINGULAR_KEYS = ("singular_values", "singular_value", "left_function", "right_function")


def _reference_issues(
    reference: Mapping[str, Any], scope: ExpressionScope, singular: bool = False
) -> Found:
    found: Found = []
    present = {k for k, v in reference.items() if v is not None}
    wrong = present & set(_EIGEN_KEYS if singular else _SINGULAR_KEYS)
    for key in sorted(wrong):
        hint = (
            "the problem asks for singular values: use singular_value(s), left_function, "
            "right_function"
            if singular
            else "singular values belong to an integral operator (operator.kernel) or to "
            "want: smallest-singular"
        )
        found.append((("reference", key), hint))
    if wrong:
        return found
    list_key, value_key = (
        ("singular_values", "singular_value") if singular else ("eigenvalues", "eigenvalue")
    )
    functions = ("left_function", "right_function") if singular else ("eigenfunction",)
    formula_keys = present & {value_key, "quantum_numbers", "where", *functions}
    if list_key in present:
        if formula_keys:
            found.append(
                (
                    ("reference",),
                    f"use either {list_key!r} (a list) or {value_key!r} with "
                    f"'quantum_numbers', not both (found {', '.join(sorted(formula_keys))})",
                )
            )
        return found
    if not formula_keys:
        found.append(
            (("reference",), f"needs {list_key!r} (a list) or {value_key!r} with 'quantum_numbers'")
        )
        return found
    for required in (value_key, "quantum_numbers"):
        if required not in present:
            found.append((("reference", required), f"missing required key {required!r}"))

    ranges = reference.get("quantum_numbers")
    if not isinstance(ranges, Mapping):
        return found  # without quantum numbers every name in the formulas would be unknown
    taken = {
        **dict.fromkeys(scope.parameters, "parameter"),
        **dict.fromkeys(scope.input_coordinates, "input coordinate"),
        **dict.fromkeys(scope.coordinates, "coordinate"),
    }
    found.extend(
        check_names(ranges, lambda q: ("reference", "quantum_numbers", q), "quantum number", taken)
    )
    count = state_count(ranges)
    if not ranges:
        found.append((("reference", "quantum_numbers"), "needs at least one quantum number"))
    elif count is not None and count > MAX_STATES:
        found.append(
            (
                ("reference", "quantum_numbers"),
                f"the ranges give {'more than 10^15' if count >= MANY_STATES else count} "
                f"states (limit {MAX_STATES})",
            )
        )
    elif count is not None:
        found.extend(_huge_quantum_numbers(ranges))
    scope = replace(scope, quantum_numbers=[q for q in ranges if isinstance(q, str)])
    checks: tuple[tuple[str, Callable[[Any], Any]], ...] = (
        (value_key, scope.eigenvalue),
        ("where", scope.where),
        ("eigenfunction", scope.eigenfunction),
        ("left_function", scope.eigenfunction),
        ("right_function", scope.right_function),
    )
    for name, parse in checks:
        check_expression(("reference", name), reference.get(name), parse, found)
    return found


# Quantum numbers reach compiled formulas as machine integers; a few huge ones could.
QUANTUM_NUMBER_LIMIT = 1_000_000


def _huge_quantum_numbers(ranges: Mapping[Any, Any]) -> Found:
    found: Found = []
    for name, value in ranges.items():
        ends = [integer_value(v) for v in value]
        if any(end is not None and abs(end) > QUANTUM_NUMBER_LIMIT for end in ends):
            found.append(
                (
                    ("reference", "quantum_numbers", str(name)),
                    f"the ends must lie within +-{QUANTUM_NUMBER_LIMIT}, got "
                    f"[{', '.join(show(v) for v in value)}]",
                )
            )
    return found
