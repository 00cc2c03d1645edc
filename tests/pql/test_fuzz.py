"""PQL fuzzing (issue #19): random text and mutated corpus expressions through parse → check → DuckDB SQL
and → the Python predicate.

Whatever the text, each stage either answers or refuses with a PQL error that names a position inside the
text (``NotSupportedOnEngine`` for a construct an engine cannot run); nothing else escapes, nothing hangs,
and when DuckDB and Python both evaluate an expression they qualify the same profiles. The budget is bounded
(a few hundred examples over a small data set).
"""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from openseg.engines.duckdb import DuckDBEngine
from openseg.pql import check, parse
from openseg.pql.errors import NotSupportedOnEngine, PqlError
from openseg.segmentation.planner import arrow_paths
from tests.pql.datagen import Dataset, generate, load_corpus, python_members
from tests.pql.test_differential import engine_members

CORPUS = [entry.text for entry in load_corpus() if "inSegment" not in entry.text]
#: The corpus's own tokens, so mutations read like PQL rather than noise.
TOKENS = sorted({token for text in CORPUS for token in re.findall(r'"[^"]*"|\w+|[^\s\w]', text)})
CHARACTERS = ' ()[]{}.,:;=<>!+-*/%^"\'0123456789aAzZ_\n'


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A corpus expression with one to three edits: a span deleted or repeated, a token inserted, a
    character replaced."""
    text = draw(st.sampled_from(CORPUS))
    for _ in range(draw(st.integers(1, 3))):
        if not text:
            break
        start = draw(st.integers(0, len(text) - 1))
        end = draw(st.integers(start, min(len(text), start + 12)))
        edit = draw(st.sampled_from(("delete", "repeat", "insert", "replace")))
        if edit == "delete":
            text = text[:start] + text[end:]
        elif edit == "repeat":
            text = text[:end] + text[start:end] + text[end:]
        elif edit == "insert":
            text = text[:start] + f" {draw(st.sampled_from(TOKENS))} " + text[start:]
        else:
            text = text[:start] + draw(st.sampled_from(CHARACTERS)) + text[start + 1:]
    return text


class Small(tuple[Dataset, dict[str, pa.Table]]):
    """The data set and its Arrow tables, with a short repr: Hypothesis prints a failing call's arguments."""

    def __repr__(self) -> str:
        return f"Small({self[0]!r})"


@pytest.fixture(scope="module")
def small() -> Small:
    data = generate(seed=7, n_profiles=40)
    return Small((data, data.tables()))


def _located(error: PqlError, text: str) -> None:
    """A PQL error names where: a line and column inside the text (or one past its end)."""
    lines = text.split("\n")
    assert 1 <= error.line <= max(1, len(lines)), (text, error)
    assert 1 <= error.col <= len(lines[error.line - 1]) + 1, (text, error)
    assert str(error), text


def _through_every_stage(text: str, small: tuple[Dataset, dict[str, pa.Table]]) -> None:
    data, tables = small
    try:
        node = parse(text)
        check(node)
    except PqlError as refused:
        _located(refused, text)
        return
    try:
        # Planned over the data's schemas, as a job plans over its store's: a field the checker accepts from the
        # XDM schema but the data never held reads as null (`select X from xEvent where X.order.priceTotal > 100`).
        has_path = arrow_paths(tables["profiles"].schema, tables["events"].schema)
        sql = engine_members(DuckDBEngine(threads=1), "duckdb", [("fuzz", node)], tables, has_path=has_path)["fuzz"]
    except NotSupportedOnEngine:
        sql = None
    try:
        python = python_members(data, [("fuzz", node)])["fuzz"]
    except PqlError as refused:
        _located(refused, text)
        return
    if sql is not None:
        assert sql == python, text


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mutated())
@example(text="select X from xEvent where X.order.priceTotal > 100")  # a field the data never held: null
def test_mutated_corpus_expressions_answer_or_refuse_with_a_position(
        text: str, small: tuple[Dataset, dict[str, pa.Table]]) -> None:
    _through_every_stage(text, small)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.one_of(st.text(alphabet=CHARACTERS, max_size=60),
                      st.lists(st.sampled_from(TOKENS), max_size=12).map(" ".join)))
def test_random_text_answers_or_refuses_with_a_position(text: str, small: tuple[Dataset, dict[str, pa.Table]]) -> None:
    _through_every_stage(text, small)


@pytest.mark.parametrize(("text", "col"), [("loyalty.joinDate < 3 days", 20), ("loyalty.joinDate < - 3 days", 22),
                                           ("loyalty.points + 3 days > 1", 1)])
def test_a_duration_that_moves_no_time_is_refused_where_it_stands(text: str, col: int) -> None:
    # Found by test_mutated_corpus_expressions_answer_or_refuse_with_a_position: these passed the checker and
    # made both compilers raise a TypeError (a 500 in the API).
    with pytest.raises(PqlError) as refused:
        check(parse(text))
    assert (refused.value.line, refused.value.col) == (1, col)
    assert "a duration can only be added to or subtracted from a date or a time" in str(refused.value)
