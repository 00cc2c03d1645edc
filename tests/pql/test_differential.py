"""DuckDB SQL, Spark SQL and Python must qualify exactly the same profiles for every corpus expression.

The whole corpus runs as ONE planner query per engine (so this also exercises the one-pass planner:
shared event scan, deduplicated aggregates, in-job segment-of-segments), over the seeded dataset.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openseg.engines.base import Engine
from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import ast, functions, parse
from openseg.pql.derived import PathCheck
from openseg.pql.errors import NotSupportedOnEngine
from openseg.pql.to_sql import compile_expression
from openseg.segmentation.planner import plan_segments
from tests.pql.datagen import AS_OF, CorpusEntry, Dataset, generate, load_corpus, membership_relation, python_members

CORPUS = load_corpus()
PARSED = [(entry.segment_id, parse(entry.text)) for entry in CORPUS]
TEXT = {entry.segment_id: entry for entry in CORPUS}
#: Corpus constructs Spark cannot run: none (docs/pql.md's Spark column says "yes" everywhere, asserted below).
SPARK_UNSUPPORTED: set[str] = set()


def engine_members(engine: Engine, dialect: str, segments: list[tuple[str, ast.Node]],
                   tables: dict[str, pa.Table], as_of: dt.datetime = AS_OF,
                   has_path: PathCheck | None = None) -> dict[str, set[str]]:
    plan = plan_segments(segments, as_of, dialect, membership=membership_relation(), has_path=has_path)
    rows = engine.run(plan.query, tables).to_pylist()
    return {s: {row["_profile_id"] for row in rows if row[plan.columns[s]]} for s, _ in segments}


def mismatches(expected: dict[str, set[str]], actual: dict[str, set[str]]) -> list[str]:
    report = []
    for segment_id, members in expected.items():
        if actual[segment_id] != members:
            entry = TEXT[segment_id]
            extra, missing = sorted(actual[segment_id] - members), sorted(members - actual[segment_id])
            report.append(f"line {entry.line}: {entry.text}\n    extra {extra[:5]} missing {missing[:5]}")
    return report


@pytest.fixture(scope="module")
def python_results(dataset: Dataset) -> dict[str, set[str]]:
    return python_members(dataset, PARSED)


def test_corpus_is_large_and_exercises_every_node_and_function() -> None:
    assert len(CORPUS) >= 150
    nodes = [node for _, root in PARSED for node in root.walk()]
    assert {type(n) for n in nodes} == set(ast.NODE_CLASSES)
    used = {n.name for n in nodes if isinstance(n, ast.Call)}
    used |= {n.kind.value for n in nodes if isinstance(n, ast.Aggregate)}
    used |= {n.kind.value for n in nodes if isinstance(n, ast.CurrentTime)}
    used |= {"notIn" if n.negated else "in" for n in nodes if isinstance(n, ast.In)}
    used |= {"forall" if n.variable else "all" for n in nodes if isinstance(n, ast.ForAll)}
    used |= {"exists" if n.variable else "any" for n in nodes if isinstance(n, ast.Exists)}
    by_node = {"If": "if", "Like": "like", "Select": "select", "Occurs": "occurs", "Chain": "chain",
               "InSegment": "inSegment", "DateLiteral": "date", "DateTimeLiteral": "datetime"}
    used |= {name for cls, name in by_node.items() if any(type(n).__name__ == cls for n in nodes)}
    # `a.filter(c)` parses to the same EventFilter node as `a[c]`: look for the spelling itself.
    used |= {"filter"} if any(".filter(" in entry.text for entry in CORPUS) else set()
    assert set(functions.FUNCTIONS) - used == set()


def test_corpus_qualifies_someone_and_not_everyone_for_most_expressions(python_results: dict[str, set[str]],
                                                                        dataset: Dataset) -> None:
    # A corpus of always-false expressions would make the comparison vacuous.
    informative = [s for s, m in python_results.items() if 0 < len(m) < len(dataset.profiles)]
    assert len(informative) >= 0.9 * len(python_results)


def test_in_segment_namespaces_compare_case_insensitively(duckdb_engine: DuckDBEngine, tables: dict[str, pa.Table],
                                                          dataset: Dataset) -> None:
    spellings = [("lower", parse('inSegment("ups", "seg-vip")')), ("upper", parse('inSegment("UPS", "seg-vip")')),
                 ("mixed", parse('inSegment("uPs", "seg-vip")')), ("bare", parse('inSegment("seg-vip")'))]
    by_python = python_members(dataset, spellings)
    by_duckdb = engine_members(duckdb_engine, "duckdb", spellings, tables)
    expected = by_python["bare"]
    assert 0 < len(expected) < len(dataset.profiles)
    assert by_python == by_duckdb == dict.fromkeys(by_python, expected)


def test_duckdb_matches_python(duckdb_engine: DuckDBEngine, tables: dict[str, pa.Table],
                               python_results: dict[str, set[str]]) -> None:
    actual = engine_members(duckdb_engine, "duckdb", PARSED, tables)
    assert mismatches(python_results, actual) == []


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_matches_python(spark_engine: Engine, tables: dict[str, pa.Table],
                              python_results: dict[str, set[str]]) -> None:
    actual = engine_members(spark_engine, "spark", PARSED, tables)
    assert mismatches(python_results, actual) == []


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_every_corpus_expression_compiles_on_both_engines(dialect: str) -> None:
    refused: dict[str, str] = {}
    for segment_id, node in PARSED:
        try:
            compile_expression(node, AS_OF, dialect, membership=membership_relation())
        except NotSupportedOnEngine as error:
            refused[segment_id] = f"{error.engine}: {error.construct}"
    assert refused == {}


# Random data: a third of the corpus over freshly generated, small datasets (DuckDB vs Python).
SUBSET = PARSED[::3]


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), size=st.integers(min_value=1, max_value=60))
def test_duckdb_matches_python_on_random_data(seed: int, size: int) -> None:
    data = generate(seed=seed, n_profiles=size)
    segments = [(s, n) for s, n in SUBSET if not _depends_outside(n)]
    expected = python_members(data, segments)
    actual = engine_members(DuckDBEngine(threads=1), "duckdb", segments, data.tables())
    assert mismatches(expected, actual) == []


def _depends_outside(node: Any) -> bool:
    subset_ids = {s for s, _ in SUBSET}
    return any(isinstance(n, ast.InSegment) and n.segment_id.startswith("corpus-") and n.segment_id not in subset_ids
               for n in node.walk())


def test_entries_are_unique() -> None:
    ids = [entry.segment_id for entry in CORPUS]
    assert len(ids) == len(set(ids))
    texts = [entry.text for entry in CORPUS]
    assert len(texts) == len(set(texts))


def test_corpus_entry_shape() -> None:
    entry = CORPUS[0]
    assert isinstance(entry, CorpusEntry) and entry.segment_id == f"line-{entry.line}"


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spec_examples_evaluate_identically_on_three_evaluators(dataset: Dataset, tables: dict[str, pa.Table],
                                                                duckdb_engine: DuckDBEngine,
                                                                spark_engine: Engine) -> None:
    """Issue 3's acceptance: every concrete example of the spec's PQL section, on DuckDB, Spark and Python."""
    from tests.pql.test_spec_examples import CONCRETE

    examples = [(f"spec-{i}", parse(text)) for i, text in enumerate(CONCRETE)]
    for segment_id, text in zip((s for s, _ in examples), CONCRETE, strict=True):
        TEXT.setdefault(segment_id, CorpusEntry(segment_id=segment_id, text=text, line=0))
    expected = python_members(dataset, examples)
    assert mismatches(expected, engine_members(duckdb_engine, "duckdb", examples, tables)) == []
    assert mismatches(expected, engine_members(spark_engine, "spark", examples, tables)) == []
    assert any(0 < len(m) < len(dataset.profiles) for m in expected.values())


def test_docs_mark_what_spark_cannot_run() -> None:
    """docs/pql.md's Spark column says "no" exactly for the constructs Spark refuses."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "pql.md").read_text(encoding="utf-8")
    spark_cells = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0].startswith("`"):
            spark_cells[cells[0].strip("`")] = cells[3]
    refused = {name for name, cell in spark_cells.items() if cell.startswith("no")}
    assert refused == SPARK_UNSUPPORTED
