"""Explanations agree with DuckDB, node by node, over the whole differential corpus.

Every corpus expression is explained for every generated profile. The root of each explanation must be
DuckDB's membership (the one-pass plan's column for the segment), and every condition below it must have
the value DuckDB computes for that sub-expression planned as a segment of its own: an explanation marks
exactly the conditions that are false.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import ast, to_text
from openseg.segmentation.explain import Explainer
from openseg.segmentation.planner import plan_segments
from tests.pql.datagen import AS_OF, Dataset, membership_relation
from tests.pql.test_differential import PARSED, TEXT


def _conditions(node: ast.Expr) -> list[ast.Expr]:
    """The sub-expressions an explanation has a node for, in its order (parents first)."""
    if isinstance(node, ast.Lambda):
        return _conditions(node.body)
    operands = node.operands if isinstance(node, ast.And | ast.Or) else (node.operand,) if isinstance(node, ast.Not) else ()
    return [node, *(below for operand in operands for below in _conditions(operand))]


def _composed(a: ast.Expr, b: ast.Expr, c: ast.Expr) -> ast.Expr:
    """``(a and not b) or c``: the corpus is mostly single conditions; these give explanations depth."""
    a, b, c = (node.body if isinstance(node, ast.Lambda) else node for node in (a, b, c))
    return ast.Or((ast.And((a, ast.Not(b))), c))


#: The corpus, and its expressions three at a time composed into trees of and / or / not.
EXPRESSIONS = [*PARSED, *((f"composed-{i}", _composed(*(node for _, node in PARSED[i:i + 3])))
                          for i in range(0, len(PARSED) - 2, 3))]
#: Every distinct condition below a root, planned as a segment of its own.
SUB_CONDITIONS: dict[ast.Expr, str] = {}
for _segment_id, _root in EXPRESSIONS:
    for _index, _node in enumerate(_conditions(_root)[1:], start=1):
        SUB_CONDITIONS.setdefault(_node, f"{_segment_id}#{_index}")


@pytest.fixture(scope="module")
def duckdb_values(duckdb_engine: DuckDBEngine, tables: dict[str, pa.Table]) -> dict[str, set[str]]:
    """Per expression and per sub-condition, the profiles DuckDB finds it true for (one plan)."""
    segments = [*EXPRESSIONS, *((segment_id, node) for node, segment_id in SUB_CONDITIONS.items())]
    plan = plan_segments(segments, AS_OF, "duckdb", membership=membership_relation())
    rows = duckdb_engine.run(plan.query, tables).to_pylist()
    return {s: {row["_profile_id"] for row in rows if row[plan.columns[s]]} for s, _ in segments}


def _view(profile: dict[str, Any], references: set[str], members: dict[str, set[str]]) -> dict[str, Any]:
    """The profile as the plan sees it: ``inSegment`` of a corpus segment reads that segment's result."""
    if not references:
        return profile
    ups = dict((profile.get("segmentMembership") or {}).get("ups") or {})
    for segment_id in references:
        if profile["_profile_id"] in members[segment_id]:
            ups[segment_id] = {"status": "realized"}
        else:
            ups.pop(segment_id, None)
    return {**profile, "segmentMembership": {"ups": ups}}


def test_the_corpus_has_conditions_below_its_roots() -> None:
    assert len(SUB_CONDITIONS) >= 200
    assert {type(node) for node in SUB_CONDITIONS} >= {ast.And, ast.Or, ast.Not, ast.Compare, ast.EventFilter,
                                                        ast.InSegment}


def test_every_node_of_every_explanation_is_duckdbs_value(dataset: Dataset,
                                                          duckdb_values: dict[str, set[str]]) -> None:
    events = dataset.events_by_profile()
    mismatches: list[str] = []
    mixed = 0  # explanations with both true and false conditions: the comparison is not vacuous
    for segment_id, root in EXPRESSIONS:
        explainer = Explainer(root, AS_OF)
        nodes = _conditions(root)
        ids = [segment_id, *(SUB_CONDITIONS[node] for node in nodes[1:])]
        texts = [to_text(node) for node in nodes]
        references = {n.segment_id for n in root.walk() if isinstance(n, ast.InSegment)} & set(TEXT)
        for profile in dataset.profiles:
            profile_id = profile["_profile_id"]
            explanation = explainer.explain(_view(profile, references, duckdb_values), events[profile_id])
            found = explanation.walk()
            assert [c.pql for c in found] == texts
            mixed += len({c.value for c in found}) == 2
            for condition, node_id in zip(found, ids, strict=True):
                if condition.value != (profile_id in duckdb_values[node_id]):
                    mismatches.append(f"{segment_id} {profile_id}: {condition.pql} is "
                                      f"{condition.value} in the explanation")
    assert mismatches == []
    assert mixed >= 5_000
