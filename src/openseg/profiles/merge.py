"""Attribute merge: many profile fragments of one profile -> one merged row, per merge policy.

Every *attribute* (a leaf of the XDM tree; an array or a map counts as one leaf, whole) is taken from
the winning fragment among those where it is not null, so a null never overrides a value
(contract, "Decisions where AEP leaves room"). Fragments are ranked once, globally:

- ``timestampOrdered``: by ``extSourceSystemAudit.lastUpdatedDate``, falling back to the batch ingest
  time when a fragment has none; later wins.
- ``dataSetPrecedence``: by the position of the fragment's dataset in ``data.order`` (earlier wins),
  datasets not listed ranking after all listed ones; within one dataset (or among unlisted ones) the
  ``timestampOrdered`` rank decides.

Ties on time go to the later ingest time, then to the later record in ingest order, so a merge is a
pure function of its inputs. ``identityMap`` is not merged here: the caller attaches the union of the
profile's identities.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from sqlglot import exp

from openseg.profiles._sql import DIALECT, col, field, is_null, struct_pack
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import DATASET, INGEST, RID
from openseg.profiles.sources import IDENTITY_MAP

PRIORITY = "__priority"
LAST_UPDATED = ("extSourceSystemAudit", "lastUpdatedDate")


@dataclass(frozen=True)
class _Leaf:
    alias: str
    value: exp.Expr


def ranked_query(relation: str, schema: pa.Schema, policy: MergePolicySpec, *, window: bool = True) -> exp.Select:
    """``relation`` with a ``__priority`` column: the larger, the stronger its attributes.

    Args:
        relation: Fragments with the unified columns and the provenance columns.
        schema: The unified fragment schema.
        policy: The merge policy.
        window: Number the fragments in rank order (one sort of them all: DuckDB's ``arg_max`` then compares
            integers, measured faster there); False: the priority is a struct of the rank's terms, compared field
            by field (none is ever null), so no sort of every fragment is needed (Spark, where a window without
            ``PARTITION BY`` runs in one partition).

    Returns:
        ``SELECT *, row_number() OVER (ORDER BY <rank>) AS __priority FROM relation``, or with ``struct_pack(<rank>)``.
    """
    moment: exp.Expr = col(INGEST)
    if _has_timestamp(schema, LAST_UPDATED):
        moment = exp.func("coalesce", field(col(LAST_UPDATED[0]), LAST_UPDATED[1]), col(INGEST))
    order: list[exp.Expr] = []
    if policy.attribute_merge == "dataSetPrecedence":
        tier = exp.case(col(DATASET))
        for position, dataset_id in enumerate(policy.dataset_order):
            tier = tier.when(exp.Literal.string(dataset_id), exp.Literal.number(len(policy.dataset_order) - position))
        order.append(tier.else_(exp.Literal.number(0)))
    order += [moment, col(INGEST), col(RID)]
    priority = (exp.Window(this=exp.RowNumber(), order=exp.Order(expressions=[exp.Ordered(this=o) for o in order]))
                if window else struct_pack([(f"r{position}", term) for position, term in enumerate(order)]))
    return exp.select(exp.Star(), exp.alias_(priority, PRIORITY, quoted=True)).from_(relation)


def merge_query(relation: str, schema: pa.Schema, group_key: str) -> exp.Select:
    """Merge ranked fragments (from :func:`ranked_query`) into one row per ``group_key``.

    Args:
        relation: Ranked fragments, with ``__priority`` and the provenance columns.
        schema: The unified fragment schema (its columns become the merged columns, in order).
        group_key: The column naming each fragment's profile.

    Returns:
        ``group_key``, every schema column but ``identityMap``, then ``_sources`` (the sorted dataset
        ids of the fragments) and ``_lastModifiedAt`` (the latest ingest time among them).
    """
    leaves: list[_Leaf] = []
    rebuilt: list[exp.Expr] = []
    for top in schema:
        if top.name == IDENTITY_MAP:
            continue
        value = _rebuild(top.type, col(top.name), leaves)
        rebuilt.append(exp.alias_(value, top.name, quoted=True))
    aggregates = [
        exp.alias_(
            exp.Filter(
                this=exp.ArgMax(this=leaf.value, expression=col(PRIORITY)),
                expression=exp.Where(this=exp.Not(this=is_null(leaf.value))),
            ),
            leaf.alias,
            quoted=True,
        )
        for leaf in leaves
    ]
    sources = exp.func("list_sort", exp.ArrayAgg(this=exp.Distinct(expressions=[col(DATASET)])), dialect=DIALECT)
    inner = (
        exp.select(
            col(group_key),
            *aggregates,
            exp.alias_(sources, "_sources", quoted=True),
            exp.alias_(exp.Max(this=col(INGEST)), "_lastModifiedAt", quoted=True),
        )
        .from_(relation)
        .group_by(col(group_key))
    )
    return exp.select(col(group_key), *rebuilt, col("_sources"), col("_lastModifiedAt")).from_(
        exp.alias_(inner.subquery(), "m", quoted=True)
    )


def _rebuild(data_type: pa.DataType, value: exp.Expr, leaves: list[_Leaf]) -> exp.Expr:
    """The merged value of one field: its own aggregate for a leaf, a rebuilt struct otherwise."""
    if not pa.types.is_struct(data_type) or data_type.num_fields == 0:
        alias = f"__a{len(leaves)}"
        leaves.append(_Leaf(alias, value))
        return col(alias)
    first = len(leaves)
    children = [
        (child.name, _rebuild(child.type, field(value, child.name), leaves))
        for child in (data_type.field(i) for i in range(data_type.num_fields))
    ]
    # A struct whose every leaf is missing stays missing, as the field was absent from all fragments.
    missing = exp.and_(*[is_null(col(leaf.alias)) for leaf in leaves[first:]])
    return exp.case().when(missing, exp.Null()).else_(struct_pack(children))


def _has_timestamp(schema: pa.Schema, path: tuple[str, ...]) -> bool:
    data_type: pa.DataType | None = None
    for depth, name in enumerate(path):
        container = schema if depth == 0 else data_type
        if container is None or (depth and not pa.types.is_struct(container)):
            return False
        index = container.get_field_index(name)
        if index < 0:
            return False
        data_type = container.field(index).type
    return data_type is not None and pa.types.is_timestamp(data_type)
