"""Reading a problem file's YAML safely, with the line of every key.

Anchors and aliases are refused: they are the only way to make a small YAML document
expand into a huge one.  Errors are located by key path (``("reference", "eigenvalue")``),
which maps to the line where that key is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

MAX_YAML_DEPTH = 50

# A key path into the data: mapping keys and list indices.
Key = tuple[str | int, ...]


class YamlProblem(Exception):
    """The text is not acceptable YAML; ``line`` is 1-based where known."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


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
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
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
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as error:
        raise YamlProblem(_mark_line(error), _yaml_message(error)) from None
    except RecursionError:
        raise YamlProblem(None, "YAML is nested too deeply") from None
    except (ValueError, OverflowError) as error:
        raise YamlProblem(None, f"invalid YAML value: {error}") from None
    lines: dict[Key, int] = {}
    duplicates: list[tuple[int, Key, str]] = []
    stack: list[tuple[Key, yaml.Node]] = [((), node)] if node is not None else []
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
                    duplicates.append((line, key_path, f"duplicate key {key_node.value!r}"))
                seen.add(key_node.value)
                lines.setdefault(key_path, line)
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


def dotted(key: Key) -> str:
    """``("solver", "sampling_scales", 0)`` -> ``solver.sampling_scales[0]``."""
    text = ""
    for part in key:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text
