"""Pydantic validation errors rewritten as plain messages located by key path."""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from nsvd_cli.spec.fields import quote, show
from nsvd_cli.spec.models import (
    DOMAIN_FORMS,
    DOMAIN_TAGS,
    INPUT_DOMAIN_FORMS,
    Langevin,
    Operator,
    Problem,
    Reference,
    Solver,
)
from nsvd_cli.spec.yaml_reader import Key

# Which model sits at a key path, for listing the keys it allows.
_MODEL_AT: dict[Key, type[BaseModel]] = {
    (): Problem,
    ("operator",): Operator,
    ("operator", "langevin"): Langevin,
    ("solver",): Solver,
    ("reference",): Reference,
}


def structural_issue(error: Mapping[str, Any]) -> tuple[Key, str]:
    """One pydantic error (from ``ValidationError.errors()``) as a key path and a message."""
    loc = list(error["loc"])
    kind = error["type"]
    model_at = dict(_MODEL_AT)
    if len(loc) >= 2 and loc[0] == "domain" and loc[1] in DOMAIN_TAGS:
        tag = loc.pop(1)
        if DOMAIN_TAGS[tag] is not None:
            model_at[("domain",)] = DOMAIN_TAGS[tag]  # type: ignore[assignment]
        if tag == "whole-space" and kind == "literal_error":
            return ("domain",), f"{DOMAIN_FORMS}, got {show(error.get('input'))}"
    elif loc[:2] == ["operator", "input_domain"] and len(loc) >= 3 and loc[2] in DOMAIN_TAGS:
        tag = loc.pop(2)
        model_at[("operator", "input_domain")] = DOMAIN_TAGS[tag]  # type: ignore[assignment]
    if loc and loc[-1] == "[key]":
        loc.pop()
        loc[-1] = str(loc[-1])
        return tuple(loc), f"keys must be names, got {show(error.get('input'))}"
    key: Key = tuple(loc)
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind in ("extra_forbidden", "invalid_key"):
        model = model_at.get(key[:-1])
        name = key[-1]
        if model is None:
            return key, f"unknown key {quote(name)}"
        allowed = list(model.model_fields)
        hint = difflib.get_close_matches(str(name), allowed, n=1)
        if not hint:  # a key written at the wrong level: `potential:` outside `operator:`
            hint = [
                ".".join(map(str, (*path, name)))
                for path, other in model_at.items()
                if path != key[:-1] and name in getattr(other, "model_fields", {})
            ][:1]
        suggestion = f"; did you mean {hint[0]!r}?" if hint else ""
        return key, f"unknown key {quote(name)} (allowed: {', '.join(allowed)}{suggestion})"
    if kind == "missing":
        return key, f"missing required key {key[-1]!r}"
    if kind == "literal_error":
        return key, f"invalid value {show(value)} (expected {ctx.get('expected', '?')})"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return key, f"expected a mapping (key: value), got {show(value)}"
    if kind == "list_type":
        return key, f"expected a list, got {show(value)}"
    if kind == "too_short":
        least = ctx.get("min_length")
        return key, f"needs at least {least} {'entry' if least == 1 else 'entries'}"
    if kind == "too_long":
        actual = ctx.get("actual_length")
        if actual is None and isinstance(value, (Mapping, list)):
            actual = len(value)
        return key, f"allows at most {ctx.get('max_length')} entries, got {actual}"
    if kind == "domain_form":
        return key, f"{DOMAIN_FORMS}, got {show(value)}"
    if kind == "input_domain_form":
        return key, f"{INPUT_DOMAIN_FORMS}, got {show(value)}"
    if "message" in ctx:
        return key, str(ctx["message"])
    message = str(error.get("msg", "invalid value"))
    return key, message.removeprefix("Value error, ")
