"""Field projection for exports: dotted XDM paths become the same nested structure, only those leaves."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
from sqlglot import exp

Tree = dict[str, "Tree | None"]  # None marks "the whole value at this path"


def _tree(paths: Sequence[str]) -> Tree:
    root: Tree = {}
    for path in paths:
        node = root
        parts = path.split(".")
        for i, part in enumerate(parts):
            if i == len(parts) - 1:
                node[part] = None
            else:
                child = node.get(part, {})
                if child is None:  # an ancestor is already taken whole
                    break
                node[part] = child
                node = child
    return root


def _field(data_type: pa.DataType, name: str) -> pa.Field | None:
    if not pa.types.is_struct(data_type):
        return None
    index = data_type.get_field_index(name)
    return data_type.field(index) if index >= 0 else None


def _build(tree: Tree, data_type: pa.DataType, value: exp.Expression) -> exp.Expression | None:
    members = []
    for name, child in tree.items():
        field = _field(data_type, name)
        if field is None:
            continue  # a field the data does not have is left out, as AEP does
        reference = exp.Dot(this=value.copy(), expression=exp.to_identifier(name, quoted=True))
        built = reference if child is None else _build(child, field.type, reference)
        if built is not None:
            members.append(exp.PropertyEQ(this=exp.to_identifier(name, quoted=True), expression=built))
    return exp.Struct(expressions=members) if members else None


def project(schema: pa.Schema, paths: Sequence[str], alias: str,
            always: Sequence[str] = ()) -> list[exp.Expr]:
    """SELECT items for ``paths`` over the relation ``alias`` with Arrow ``schema`` (all columns when
    ``paths`` is empty), plus the top-level columns in ``always``. Internal ``_`` columns are never
    projected unless listed in ``always``."""
    items: list[exp.Expr] = []
    taken: set[str] = set()
    if not paths:
        for name in schema.names:
            if not name.startswith("_") or name in always:
                items.append(exp.column(name, table=alias, quoted=True))
                taken.add(name)
    else:
        for name, child in _tree(paths).items():
            if name not in schema.names or name.startswith("_"):
                continue
            column = exp.column(name, table=alias, quoted=True)
            value = column if child is None else _build(child, schema.field(name).type, column)
            if value is not None:
                items.append(exp.alias_(value, exp.to_identifier(name, quoted=True)))
                taken.add(name)
    for name in always:
        if name in schema.names and name not in taken:
            items.append(exp.column(name, table=alias, quoted=True))
    return items
