"""Shorthands of AEP's pages, rewritten to core nodes while parsing (part of the parser).

No backend sees them: each becomes a tree every evaluator already runs, so DuckDB, Spark and Python agree on
them by construction.

* **Event projection.** ``xEvent.a.b`` is the value ``a.b`` of each event (``xEvent.map(a.b)``). Compared,
  tested or matched, it means "some event has": ``xEvent.metrics.commerce.abandons.value > 0`` (the
  Segmentation API's preview example) is ``xEvent.any(metrics.commerce.abandons.value > 0)``, and
  ``xEvent.timestamp occurs today`` is ``xEvent.any(timestamp occurs today)``. An aggregate of it
  aggregates the events: ``xEvent.commerce.order.priceTotal.sum()`` is ``xEvent.sum(commerce.order.priceTotal)``.
* **Aggregate over a bound variable.** ``sum X.v over X from S where C`` (misc-functions.md) is
  ``(select X from S where C).sum(v)``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any

from openseg.pql import ast
from openseg.pql.functions import FUNCTIONS, ArgType


def is_event_list(node: ast.Expr) -> bool:
    """``xEvent`` or a filter of it (``xEvent[...]``)."""
    while isinstance(node, ast.EventFilter):
        node = node.source
    return isinstance(node, ast.FieldPath) and node.root is ast.Root.EVENTS


def projection(node: ast.Expr) -> tuple[ast.Expr, ast.Expr] | None:
    """``(events, item value)`` when ``node`` is a value of each event (``xEvent.a.b``), else None."""
    if (isinstance(node, ast.Call) and node.name == "map" and node.target is not None
            and is_event_list(node.target) and len(node.args) == 1):
        return node.target, node.args[0]
    return None


def project(events: ast.Expr, value: ast.Expr, span: ast.Span) -> ast.Expr:
    """The value ``value`` (item-rooted) of each event of ``events``."""
    return ast.Call("map", events, (value,), span=span)


def some_event(node: ast.Expr) -> ast.Expr:
    """A comparison, ``in``, ``like`` or ``occurs`` on an event projection as "some event has" (else ``node``)."""
    if isinstance(node, ast.Compare):
        left, right = projection(node.left), projection(node.right)
        if left is not None and right is not None:
            raise ast.InvalidNode("both sides are values of each event; compare two fields of one event with "
                                  "exists E from xEvent where E.a = E.b", node.span)
        if left is not None:
            return ast.Exists(None, left[0], replace(node, left=left[1]), span=node.span)
        if right is not None:
            return ast.Exists(None, right[0], replace(node, right=right[1]), span=node.span)
        return node
    listed = projection(node.values) if isinstance(node, ast.In) and not node.negated else None
    if isinstance(node, ast.In) and listed is not None and projection(node.value) is None:
        # `"a" in xEvent.eventType`: some event's type is "a".
        return ast.Exists(None, listed[0], ast.Compare(ast.CompareOp.EQ, node.value, listed[1], span=node.span),
                          span=node.span)
    if not isinstance(node, ast.In | ast.Like | ast.Occurs):
        return node
    found = projection(node.value)
    if found is None:
        return node
    return ast.Exists(None, found[0], replace(node, value=found[1]), span=node.span)


def unconsumed_projection(expr: ast.Expr) -> ast.Expr | None:
    """A value of each event left as a list (``xEvent.a.distinct()``, ``xEvent.a + 1``), which no engine
    reads as a value: the first one, or None."""
    for node in expr.walk():
        if isinstance(node, ast.Expr) and projection(node) is not None:
            return node
    return None


def bound_to_item(value: ast.Expr, variable: str) -> ast.Expr | None:
    """``value`` with the paths of ``variable`` rooted at the current item; None when it is the variable itself.

    Raises:
        InvalidNode: ``value`` uses the variable bare inside a larger expression, or holds a condition on a
            list of its own (whose item would be confused with the variable's).
    """
    if isinstance(value, ast.FieldPath) and value.root is ast.Root.VARIABLE and value.name == variable \
            and not value.segments:
        return None
    # Inside a nested list's condition the current item is that list's: the variable cannot become it there.
    inner = _inside_inner_scope(value, variable)
    for node in value.walk():
        if inner or (isinstance(node, ast.FieldPath) and node.root is ast.Root.ITEM):
            raise ast.InvalidNode(f"the value summed over {variable} cannot hold a condition on another list; "
                                  f"use a field of {variable}, e.g. {variable}.commerce.order.priceTotal", value.span)
        if isinstance(node, ast.FieldPath) and node.root is ast.Root.VARIABLE and node.name == variable \
                and not node.segments:
            raise ast.InvalidNode(f"use a field of {variable} here (or aggregate {variable} itself alone)", node.span)
    def to_item(node: ast.Node) -> ast.Node:
        if isinstance(node, ast.FieldPath) and node.root is ast.Root.VARIABLE and node.name == variable:
            return ast.FieldPath(ast.Root.ITEM, node.segments, span=node.span)
        return node

    result: ast.Expr = rebuild(value, to_item)
    return result


#: Fields of nodes whose expressions are about another item than their node's (a nested list scope).
_INNER_SCOPES: dict[type[ast.Node], frozenset[str]] = {
    ast.EventFilter: frozenset({"condition"}), ast.Exists: frozenset({"condition"}),
    ast.ForAll: frozenset({"condition"}), ast.Select: frozenset({"where"}), ast.Aggregate: frozenset({"value"}),
    ast.Chain: frozenset({"time_field", "steps"}),
}


def inner_scopes(node: ast.Node) -> frozenset[str]:
    """The fields of ``node`` whose expressions are about another item than ``node``'s (each a level the up
    operator counts): a list's condition or value, a function's item arguments."""
    if isinstance(node, ast.Call):
        return frozenset({"args"}) if any(p.type in (ArgType.ITEM_VALUE, ArgType.PREDICATE)
                                          for p in FUNCTIONS[node.name].params) else frozenset()
    return _INNER_SCOPES.get(type(node), frozenset())


def _inside_inner_scope(node: Any, variable: str, inner: bool = False) -> bool:
    """Whether ``variable`` is read inside a nested list's condition or value in ``node`` (there the current
    item is that list's, so the variable's paths cannot become item paths)."""
    if isinstance(node, ast.FieldPath):
        return inner and node.root is ast.Root.VARIABLE and node.name == variable
    scopes = _INNER_SCOPES.get(type(node), frozenset())
    if isinstance(node, ast.Call):
        scopes = frozenset({"args"}) if any(p.type in (ArgType.ITEM_VALUE, ArgType.PREDICATE)
                                             for p in FUNCTIONS[node.name].params) else frozenset()
    for f in fields(node):
        value = getattr(node, f.name)
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            if isinstance(child, ast.Node) and _inside_inner_scope(child, variable, inner or f.name in scopes):
                return True
    return False


def item_as_variable(condition: ast.Expr, variable: str) -> ast.Expr:
    """``condition`` (of a ``[...]`` filter) with the current item named ``variable``: its item paths, outside
    the conditions of nested lists, become paths of the variable (the up operator's rewrite, see parser)."""
    def walk(node: Any) -> Any:
        if isinstance(node, ast.FieldPath) and node.root is ast.Root.ITEM:
            return ast.FieldPath(ast.Root.VARIABLE, node.segments, variable, span=node.span)
        inner = _INNER_SCOPES.get(type(node), frozenset())
        if isinstance(node, ast.Call):
            # Item-value arguments (map's, topN's ...) are about the receiver's items.
            item_params = any(p.type in (ArgType.ITEM_VALUE, ArgType.PREDICATE) for p in FUNCTIONS[node.name].params)
            inner = frozenset({"args"}) if item_params else frozenset()
        updates: dict[str, object] = {}
        for f in fields(node):
            if f.name == "span" or f.name in inner:
                continue
            value = getattr(node, f.name)
            if isinstance(value, ast.Node):
                updates[f.name] = walk(value)
            elif isinstance(value, tuple) and any(isinstance(item, ast.Node) for item in value):
                updates[f.name] = tuple(walk(item) if isinstance(item, ast.Node) else item for item in value)
        return replace(node, **updates) if updates else node

    result: ast.Expr = walk(condition)
    return result


def substitute(node: Any, replacements: Mapping[Any, Any]) -> Any:
    """``node`` with every subtree equal to a key of ``replacements`` replaced by its value, outermost first: a
    match inside a replaced subtree is gone with it (``rebuild``, bottom-up, would replace the inner one first)."""
    if node in replacements:
        return replacements[node]
    updates: dict[str, object] = {}
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, ast.Node):
            updates[f.name] = substitute(value, replacements)
        elif isinstance(value, tuple) and any(isinstance(item, ast.Node) for item in value):
            updates[f.name] = tuple(substitute(item, replacements) if isinstance(item, ast.Node) else item
                                    for item in value)
    return replace(node, **updates) if updates else node


def rebuild(node: Any, change: Callable[[Any], Any]) -> Any:
    """``node`` rebuilt bottom-up with ``change`` applied to every node (spans kept)."""
    updates: dict[str, object] = {}
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if isinstance(value, ast.Node):
            new: object = rebuild(value, change)
        elif isinstance(value, tuple) and any(isinstance(item, ast.Node) for item in value):
            new = tuple(rebuild(item, change) if isinstance(item, ast.Node) else item for item in value)
        else:
            continue
        updates[f.name] = new
    rebuilt = replace(node, **updates) if updates else node
    return change(rebuilt)
