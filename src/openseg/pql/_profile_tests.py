"""Profile conditions inside event conditions (part of the SQL backend).

A condition on each event that also tests the profile on its own
(``xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]``) is decided both ways: one event
column per answer, and the profile's own answer picks one (``to_sql.SqlCompiler._split_on_profile``), so the
events scan needs no profile row. This module finds those tests. A profile field compared with an event
field (``E.eventType = homeAddress.country``) cannot be decided apart from the event: its scan joins the
profile rows instead (``derived.join_profiles``), as do profile tests beyond :data:`MAX_PROFILE_TESTS`.
``inSegment`` reads another relation than the profile row, so it is decided both ways, or, when there are more
than :data:`MAX_PROFILE_TESTS` of them, read where the profile's list of events is filtered
(``_sql_event_lists``).
"""

from __future__ import annotations

from collections.abc import Sequence

from openseg.pql import ast, functions

#: Profile conditions decided both ways inside one event aggregate's conditions, each doubling its event
#: columns; beyond, field tests are read through the profile join and only ``inSegment`` tests are decided,
#: and beyond that many ``inSegment`` tests the aggregate reads a list of events (``_sql_event_lists``).
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


def decided_atoms(parts: Sequence[ast.Node | None]) -> list[ast.Expr]:
    """The profile tests inside event conditions to decide both ways: all of them when there are at most
    :data:`MAX_PROFILE_TESTS`, else those reading a segment's membership (the rest read the joined profile)."""
    atoms = profile_atoms(parts)
    if len(atoms) <= MAX_PROFILE_TESTS:
        return atoms
    return [atom for atom in atoms if any(isinstance(n, ast.InSegment) for n in atom.walk())]


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
