"""Reading a problem file's YAML safely, with the line of every key.

Anchors and aliases are refused: they are the only way to make a small YAML document
expand into a huge one.  Sets (``!!set``) are refused too: their order is arbitrary, and a
validator would take one for a list.  Errors are located by key path
(``("reference", "eigenvalue")``), which maps to the line where that key is written.

libyaml's parser is used when PyYAML has it: a file near the size limit then reads in a
fraction of a second instead of several.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml

from nsvd_cli.errors import NsvdError

MAX_YAML_DEPTH = 50
# A problem file holds a few dozen values; a huge generated list would take seconds to load.
MAX_YAML_VALUES = 10_000
# Python refuses to convert longer decimal strings to int (sys.get_int_max_str_digits).
MAX_INTEGER_DIGITS = 4000
_DECIMAL_INTEGER = re.compile(r"[-+]?[0-9][0-9_]*")

# A key path into the data: mapping keys and list indices.
Key = tuple[str | int, ...]


class YamlProblem(NsvdError):
    """The text is not acceptable YAML; ``line`` is 1-based where known."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _SafeLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader (libyaml's when available) without sets."""


def _refuse_set(loader: Any, node: yaml.Node) -> None:
    raise yaml.constructor.ConstructorError(
        None, None, "sets (!!set) are not allowed; use a list [a, b]", node.start_mark
    )


_SafeLoader.add_constructor("tag:yaml.org,2002:set", _refuse_set)


def _check_event(event: yaml.Event, depth: int) -> int:
    """Refuse anchors, aliases, silly depths and overlong integers; return the new depth."""
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
        raise YamlProblem(
            event.start_mark.line + 1,
            "YAML anchors and aliases (&name, *name) are not allowed",
        )
    # The composer recurses per level; refuse silly depths before it runs.
    if isinstance(event, yaml.CollectionStartEvent):
        depth += 1
        if depth > MAX_YAML_DEPTH:
            raise YamlProblem(
                event.start_mark.line + 1,
                f"YAML is nested too deeply (limit {MAX_YAML_DEPTH} levels)",
            )
    elif isinstance(event, yaml.CollectionEndEvent):
        depth -= 1
    elif (
        isinstance(event, yaml.ScalarEvent)
        and event.implicit[0]
        and len(event.value) > MAX_INTEGER_DIGITS
        and _DECIMAL_INTEGER.fullmatch(event.value)
    ):
        raise YamlProblem(
            event.start_mark.line + 1,
            f"a number with {len(event.value)} digits is too long",
        )
    return depth


_STR_TAG = "tag:yaml.org,2002:str"


def _key_text(constructor: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> str:
    """The key as the loaded data spells it (``~`` -> ``None``, ``0x10`` -> ``16``)."""
    if node.tag == _STR_TAG:
        return node.value
    try:
        return str(constructor.construct_object(node))
    except (yaml.YAMLError, ValueError, OverflowError):
        return node.value


def _mark_line(error: yaml.YAMLError) -> int | None:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    return None if mark is None else mark.line + 1


def _yaml_message(error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.MarkedYAMLError):
        parts = [p for p in (error.context, error.problem) if p]
        text = "; ".join(parts) if parts else "invalid YAML"
    else:
        text = str(error)
    return "YAML syntax error: " + " ".join(text.split())


def read_yaml(text: str) -> tuple[Any, dict[Key, int], list[tuple[int, Key, str]]]:
    """Safe-load ``text``; return the data, a key-path -> line map, and duplicate keys."""
    try:
        depth = values = 0
        for event in yaml.parse(text, Loader=_SafeLoader):
            depth = _check_event(event, depth)
            if isinstance(event, (yaml.ScalarEvent, yaml.CollectionStartEvent)):
                values += 1
                if values > MAX_YAML_VALUES:
                    raise YamlProblem(
                        event.start_mark.line + 1,
                        f"too many YAML values (limit {MAX_YAML_VALUES})",
                    )
        loader = _SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise YamlProblem(_mark_line(error), _yaml_message(error)) from None
    except RecursionError:
        raise YamlProblem(None, "YAML is nested too deeply") from None
    except UnicodeEncodeError as error:  # lone surrogates in a str (libyaml reads UTF-8)
        raise YamlProblem(None, f"text is not valid Unicode (character {error.start})") from None
    except (ValueError, OverflowError) as error:
        raise YamlProblem(None, f"invalid YAML value: {error}") from None
    lines: dict[Key, int] = {}
    duplicates: list[tuple[int, Key, str]] = []
    stack: list[tuple[Key, yaml.Node]] = [((), node)] if node is not None else []
    constructor = yaml.constructor.SafeConstructor()
    while stack:
        path, current = stack.pop()
        if isinstance(current, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in current.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key_path = (*path, key_node.value)
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    duplicates.append((line, key_path, f"duplicate key {ascii(key_node.value)}"))
                seen.add(key_node.value)
                lines.setdefault(key_path, line)
                loaded = _key_text(constructor, key_node)
                if loaded != key_node.value:
                    lines.setdefault((*path, loaded), line)
                stack.append((key_path, value_node))
        elif isinstance(current, yaml.SequenceNode):
            for index, item in enumerate(current.value):
                lines[(*path, index)] = item.start_mark.line + 1
                stack.append(((*path, index), item))
    return data, lines, duplicates


def line_of(lines: Mapping[Key, int], key: Key) -> int | None:
    """The line of ``key``, or of its nearest written ancestor."""
    for end in range(len(key), 0, -1):
        prefix = key[:end]
        if prefix in lines:
            return lines[prefix]
        alternative = tuple(str(k) for k in prefix)
        if alternative in lines:
            return lines[alternative]
    return None


def normalise_key(key: Key, lines: Mapping[Key, int]) -> Key:
    """Integers in pydantic locations are list indices or integer mapping keys; the YAML
    line map knows which (sequence items are stored under ints, mapping keys as text)."""
    parts: list[str | int] = []
    for part in key:
        if isinstance(part, int) and (*parts, part) not in lines:
            parts.append(str(part))
        else:
            parts.append(part)
    return tuple(parts)


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


def dotted(key: Key) -> str:
    """``("solver", "sampling_scales", 0)`` -> ``solver.sampling_scales[0]``.

    A key that is not plain ASCII letters, digits, '_' and '-' is quoted with escapes
    (``operator.'a\\nb'``, ``'n\\u0430me'``), so that the path stays on one line, cannot be
    confused with a nested key, and shows lookalike or invisible characters."""
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            name = str(part)
            name = name if _PLAIN_KEY.fullmatch(name) else ascii(name)
            text += f".{name}" if text else name
    return text
