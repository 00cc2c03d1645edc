"""Profile conditions inside event conditions (part of the SQL backend).

The SQL backend scans events without the profile row, so a condition on each event that also tests the
profile (``xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]``) cannot be computed in
that scan. Each such profile test is instead decided both ways: one event column per answer, and the
profile's own answer picks one (``to_sql.SqlCompiler._split_on_profile``). This module finds those tests.
"""

from __future__ import annotations

from collections.abc import Sequence

from openseg.pql import ast, functions

#: Profile conditions inside one event aggregate's conditions, each doubling its event columns.
MAX_PROFILE_TESTS = 3
_BOOLEAN_NODES = (ast.Compare, ast.In, ast.Like, ast.Occurs, ast.And, ast.Or, ast.Not, ast.InSegment)


def profile_atoms(parts: Sequence[ast.Node | None]) -> list[ast.Expr]:
    """The largest conditions inside event conditions that read only the profile (distinct, in order)."""
    found: list[ast.Expr] = []

    def visit(node: ast.Node) -> None:
        if isinstance(node, ast.Expr) and _is_condition(node) and _profile_only(node):
            if node not in found:
                found.append(node)
            return
        for child in node.children():
            visit(child)

    for part in parts:
        if part is not None:
            visit(part)
    return found


def _is_condition(node: ast.Expr) -> bool:
    if isinstance(node, ast.Call):
        return functions.FUNCTIONS[node.name].result is functions.ArgType.BOOLEAN
    return isinstance(node, _BOOLEAN_NODES)


def _profile_only(node: ast.Node) -> bool:
    nodes = list(node.walk())
    paths = [n for n in nodes if isinstance(n, ast.FieldPath)]
    reads_profile = bool(paths) or any(isinstance(n, ast.InSegment) for n in nodes)
    return reads_profile and all(p.root is ast.Root.PROFILE for p in paths) \
        and not any(isinstance(n, ast.StepRef) for n in nodes)
