"""Fields read through arrays, made explicit for the SQL backend (part of the SQL backend).

A path that reaches a field through an array of objects is that field of each item: ``identityMap.email.id``
is the ids of the email identities, ``person.orders.storeId`` (array-functions.md) the store of each order.
The Python evaluator reads such a path item by item as it meets the array (``_py_values.get_path``); SQL
needs to know where the array is, which only the types tell, so :func:`through_arrays` rewrites each such
path into the ``map`` it means (``identityMap.email.map(id)``) using the checker's types. Both evaluators
then compute the same values.

An object filtered by a condition (``person.filter(age >= 21)``) is the list of that object when the condition
holds on it, else empty; Python wraps the object as it meets it, SQL needs the types again: such a source
becomes ``if(person.isNotNull(), [person], null)``.
"""

from __future__ import annotations

from openseg.pql import _sugar, ast
from openseg.pql.checker import array_crossings, filtered_objects
from openseg.xdm.schema import Schema


def through_arrays(expr: ast.Expr, schema: Schema) -> ast.Expr:
    """``expr`` with every field path that reads through an array written as ``map`` over that array."""
    crossings, objects = array_crossings(expr, schema), filtered_objects(expr, schema)
    if not crossings and not objects:
        return expr

    def explicit(node: ast.Node) -> ast.Node:
        if isinstance(node, ast.FieldPath) and id(node) in crossings:
            return _mapped(node, crossings[id(node)])
        if isinstance(node, ast.EventFilter) and id(node.source) in objects:
            source, span = node.source, node.source.span
            listed = ast.If(ast.Call("isNotNull", source, (), span=span), ast.ArrayLiteral((source,), span=span),
                            ast.NullLiteral(span=span), span=span)
            return ast.EventFilter(listed, node.condition, span=node.span)
        return node

    result: ast.Expr = _sugar.rebuild(expr, explicit)
    return result


def _mapped(path: ast.FieldPath, crossings: tuple[int, ...]) -> ast.Expr:
    """``a.b.c`` where ``a.b`` is an array (crossing at 2) as ``a.b.map(c)``; nested arrays nest maps."""
    segments, span = path.segments, path.span
    if crossings[0] == 0 and path.root is not ast.Root.VARIABLE:
        return path  # the item itself is an array of arrays: no path names the outer array
    value: ast.Expr = ast.FieldPath(ast.Root.ITEM, segments[crossings[-1]:], span=span)
    for k in range(len(crossings) - 1, -1, -1):
        if k == 0:
            source = ast.FieldPath(path.root, segments[:crossings[0]], path.name, span=span)
        else:
            source = ast.FieldPath(ast.Root.ITEM, segments[crossings[k - 1]:crossings[k]], span=span)
        value = ast.Call("map", source, (value,), span=span)
    return value
