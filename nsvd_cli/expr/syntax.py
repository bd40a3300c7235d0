"""Expression text to a Python syntax tree, checked before any of it is interpreted: size,
depth and the node types allowed (the tree is never compiled or executed)."""

from __future__ import annotations

import ast

from nsvd_cli.expr.rules import (
    MAX_DEPTH,
    MAX_NODES,
    MAX_TEXT_LENGTH,
    ExpressionError,
)

# Chains of one of these groups (a + b - c, a * b / c) are one n-ary node.
OPERATOR_GROUPS: dict[type[ast.operator], str] = {
    ast.Add: "sum",
    ast.Sub: "sum",
    ast.Mult: "product",
    ast.Div: "product",
    ast.Mod: "product",
}


def check_tree(tree: ast.AST) -> None:
    """Bound size and nesting before the recursive translation walks the tree."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, ast.expr):
            count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"expression is too large (more than {MAX_NODES} terms)")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"expression is nested too deeply (limit {MAX_DEPTH})")
        for child in ast.iter_child_nodes(node):
            # A long sum or product is one level (it is walked in a loop), not many.
            same_chain = (
                isinstance(node, ast.BinOp)
                and child is node.left
                and isinstance(child, ast.BinOp)
                and OPERATOR_GROUPS.get(type(child.op)) is not None
                and OPERATOR_GROUPS.get(type(child.op)) == OPERATOR_GROUPS.get(type(node.op))
            )
            stack.append((child, depth if same_chain else depth + 1))


def parse_tree(text: str) -> ast.expr:
    if not isinstance(text, str):
        raise ExpressionError(f"expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_TEXT_LENGTH:
        raise ExpressionError(
            f"expression is too long ({len(text)} characters, limit {MAX_TEXT_LENGTH})"
        )
    if not text.strip():
        raise ExpressionError("expression is empty")
    for column, char in enumerate(text, 1):
        if not char.isascii():
            # Python would read a fullwidth or italic 'x' as x (NFKC) and a Cyrillic one as
            # an unknown name; refuse both, showing what is there.
            raise ExpressionError(
                f"non-ASCII character {ascii(char)} (U+{ord(char):04X}) at column {column}: "
                "expressions are written in ASCII"
            )
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        where = f" at column {error.offset}" if error.offset else ""
        raise ExpressionError(f"syntax error{where}: {error.msg}") from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression is too complex to parse") from None
    check_tree(tree)
    return tree.body

