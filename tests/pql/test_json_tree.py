"""pql/json: AEP's JSON tree as a backend of the one AST (writer and reader), round trips and errors."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import fields, replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openseg.pql import ast, parse, to_text
from openseg.pql.errors import PqlError
from openseg.pql.json_tree import JsonTreeError, from_json, from_json_text, to_json, to_json_text
from openseg.pql.limits import duration_too_long

CORPUS = Path(__file__).parent.parent / "fixtures" / "pql" / "corpus.pql"

# The pql/json example of createSegmentDefinition in shared/aep-openapi/segmentation.yaml, verbatim.
AEP_EXAMPLE = ('{"nodeType":"fnApply","fnName":"=","params":[{"nodeType":"fieldLookup","fieldName":"a","object":'
               '{"nodeType":"parameterReference","position":1}},{"nodeType":"fieldLookup","fieldName":"b","object":'
               '{"nodeType":"parameterReference","position":1}}]}')


def profile_normal(node: ast.Node) -> ast.Node:
    """The tree pql/json keeps: no top-level lambda, profile paths without the spelling of their root."""
    if isinstance(node, ast.Lambda):
        return profile_normal(node.body)
    if isinstance(node, ast.FieldPath) and node.root is ast.Root.PROFILE and node.segments:
        return replace(node, name=None)
    changes: dict[str, object] = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, ast.Node):
            changes[f.name] = profile_normal(value)
        elif isinstance(value, tuple):
            changes[f.name] = tuple(profile_normal(v) if isinstance(v, ast.Node) else v for v in value)
    return replace(node, **changes)


def needs_a_binding(node: ast.Node) -> bool:
    """Constructs over each event or item: the ones AEP's four JSON node shapes cannot write."""
    for n in node.walk():
        if isinstance(n, ast.EventFilter | ast.Exists | ast.ForAll | ast.Select | ast.Chain):
            return True
        if isinstance(n, ast.Aggregate) and n.value is not None:
            return True
        if isinstance(n, ast.FieldPath) and n.root is not ast.Root.PROFILE:
            return True
        if isinstance(n, ast.Call) and n.name in ("topN", "bottomN"):
            return True
    return False


def corpus_lines() -> list[str]:
    lines = []
    for raw in CORPUS.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(re.sub(r"^\[[^\]]+\]\s*", "", line))
    return lines


def assert_round_trip(expr: ast.Expr) -> None:
    tree = to_json_text(expr)
    back = from_json_text(tree)
    assert back == profile_normal(expr)
    assert to_text(back) == to_text(profile_normal(expr))
    assert parse(to_text(back)) == back
    assert to_json_text(back) == tree


def test_aep_example_reads_and_is_written_back_verbatim() -> None:
    assert to_text(from_json_text(AEP_EXAMPLE)) == "a = b"
    assert to_json_text(parse("a = b")) == AEP_EXAMPLE
    assert to_json_text(parse("$1.a = $1.b")) == AEP_EXAMPLE


def test_tree_of_a_typical_definition() -> None:
    expr = parse('homeAddress.country in ["US", "FR"] and person.birthDate occurs <= 30 days before now')
    profile = {"nodeType": "parameterReference", "position": 1}
    assert to_json(expr) == {"nodeType": "fnApply", "fnName": "and", "params": [
        {"nodeType": "fnApply", "fnName": "in", "params": [
            {"nodeType": "fieldLookup", "fieldName": "country",
             "object": {"nodeType": "fieldLookup", "fieldName": "homeAddress", "object": profile}},
            {"nodeType": "literal", "literalType": "List", "value": [
                {"nodeType": "literal", "literalType": "String", "value": "US"},
                {"nodeType": "literal", "literalType": "String", "value": "FR"}]}]},
        {"nodeType": "fnApply", "fnName": "occurs", "params": [
            {"nodeType": "fieldLookup", "fieldName": "birthDate",
             "object": {"nodeType": "fieldLookup", "fieldName": "person", "object": profile}},
            {"nodeType": "fnApply", "fnName": "before", "params": [
                {"nodeType": "literal", "literalType": "String", "value": "<="},
                {"nodeType": "fnApply", "fnName": "duration", "params": [
                    {"nodeType": "literal", "literalType": "Integer", "value": 30},
                    {"nodeType": "literal", "literalType": "String", "value": "day"}]},
                {"nodeType": "fnApply", "fnName": "now", "params": []}]}]}]}


@pytest.mark.parametrize("text", corpus_lines())
def test_corpus_round_trips_or_is_refused_precisely(text: str) -> None:
    expr = parse(text)
    if not needs_a_binding(expr):
        assert_round_trip(expr)
        return
    with pytest.raises(PqlError) as caught:
        to_json(expr)
    assert caught.value.message.startswith("pql/json cannot express ")
    assert caught.value.message.endswith(
        ": AEP's pql/json nodes (fnApply, fieldLookup, parameterReference, literal) cannot bind an event or an "
        "array item; send this expression as pql/text")


REFUSALS = [
    ('xEvent[eventType = "a"].count() > 0', 1, 1, 'xEvent[...] (a condition on each event)'),
    ('homeAddress.country = "US" and xEvent.count() > 5', 1, 32, "xEvent (the profile's events)"),
    ('not (favoriteCategories.all(c => c = "x"))', 1, 6, "forall/all over items"),
    ("scores.sum() > 1 and xEvent.max(timestamp) > now", 1, 22, "max(...) of an item expression"),
    ('chain(xEvent, timestamp, [C0: WHAT(eventType = "a")])', 1, 1, "chain (a sequence of events)"),
    ("productListItems.topN(priceTotal, 1).count() = 1", 1, 1, "topN(...) of an item expression"),
]


@pytest.mark.parametrize(("text", "line", "col", "what"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusal_names_the_construct_and_its_position(text: str, line: int, col: int, what: str) -> None:
    with pytest.raises(PqlError) as caught:
        to_json(parse(text))
    assert (caught.value.line, caught.value.col) == (line, col)
    assert caught.value.message.startswith(f"pql/json cannot express {what}: ")


def _lit(kind: str, value: object) -> dict[str, object]:
    return {"nodeType": "literal", "literalType": kind, "value": value}


def _fn(name: str, *params: object) -> dict[str, object]:
    return {"nodeType": "fnApply", "fnName": name, "params": list(params)}


_A = {"nodeType": "fieldLookup", "fieldName": "a", "object": {"nodeType": "parameterReference", "position": 1}}

READS = [
    (_fn("and", _fn("and", _fn("=", _A, _lit("Integer", 1)), _fn("=", _A, _lit("Integer", 2))),
         _fn("=", _A, _lit("Double", 3))), "a = 1 and a = 2 and a = 3.0"),
    (_fn("-", _lit("Integer", 4)), "-4"),
    (_fn("-", _A), "-a"),
    (_fn("startsWith", _A, _lit("String", "x"), _lit("Boolean", False)), 'a.startsWith("x", false)'),
    (_fn("concat", _A, _lit("String", "-")), 'concat(a, "-")'),
    (_fn("count", _A), "a.count()"),
    (_fn("date", _lit("Integer", 2020), _lit("Integer", 2), _lit("Integer", 29)), 'date("2020-02-29")'),
    (_fn("datetime", _lit("String", "2024-06-01T10:00:00+02:00")), 'datetime("2024-06-01T08:00:00Z")'),
    (_fn("occurs", _A, _fn("last", _lit("String", "month"))), "a occurs last month"),
    (_fn("occurs", _A, _fn("between", _fn("today"), _fn("tomorrow"))), "a occurs between today and tomorrow"),
    (_fn("inSegment", _lit("String", "AAM"), _lit("String", "s1")), 'inSegment("aam", "s1")'),
    (_fn("isNull", {"nodeType": "parameterReference", "position": 1}), "$1.isNull()"),
    (_fn("=", _A, _lit("Null", None)), "a = null"),
]


@pytest.mark.parametrize(("tree", "text"), READS, ids=[r[1] for r in READS])
def test_reader_builds_the_parsers_tree(tree: dict[str, object], text: str) -> None:
    assert from_json(tree) == parse(text)
    assert to_text(from_json(tree)) == text


ERRORS = [
    ("[1]", "", "a node must be a JSON object with a nodeType", "a list"),
    ('{"nodeType": "fnapply"}', "/nodeType", "unknown nodeType", '"fnapply"'),
    (json.dumps(_fn("=", _A)), "/params", "= takes 2 params", "1 params"),
    (json.dumps(_fn("=", _A, {"nodeType": "fieldLookup", "fieldName": "b",
                              "object": {"nodeType": "parameterReference", "position": 2}})),
     "/params/1/object/position", "parameterReference position must be 1 (the profile)", "2"),
    (json.dumps(_fn("=", _A, {"nodeType": "fieldLookup", "fieldName": "b", "object": _lit("String", "x")})),
     "/params/1/object", "a fieldLookup's object must be a fieldLookup or the parameterReference of the profile",
     '"literal"'),
    (json.dumps(_fn("and", _fn("=", _A, _lit("Integer", "1")), _A)), "/params/0/params/1/value",
     "literalType Integer cannot hold this value", '"1"'),
    (json.dumps(_fn("=", _A, _lit("Long", 1))), "/params/1/literalType", "unknown literalType", '"Long"'),
    (json.dumps(_fn("startWith", _A)), "/fnName", "unknown fnName", "startWith"),
    (json.dumps(_fn("and", _A)), "", "'and' needs at least two operands", "and"),
    (json.dumps(_fn("lower")), "/params", "lower needs the value it applies to as its first param", "[]"),
    (json.dumps(_fn("occurs", _A, _fn("during", _A))), "/params/1", "occurs needs a time window as its second param",
     '"during"'),
    (json.dumps(_fn("date", _lit("String", "2020-13-01"))), "/params/0/value",
     'not a valid date (write "YYYY-MM-DD")', "2020-13-01"),
    (json.dumps(_fn("topN", _A, _A, _lit("Integer", 1))), "/fnName",
     "topN with an item expression cannot be read from pql/json: AEP's pql/json nodes (fnApply, fieldLookup, "
     "parameterReference, literal) cannot bind an event or an array item; send this expression as pql/text", "topN"),
]


@pytest.mark.parametrize(("text", "pointer", "message", "found"), ERRORS, ids=[e[2][:40] for e in ERRORS])
def test_reader_errors_name_the_json_pointer(text: str, pointer: str, message: str, found: str) -> None:
    with pytest.raises(JsonTreeError) as caught:
        from_json_text(text)
    assert (caught.value.pointer, caught.value.message, caught.value.found) == (pointer, message, found)


def test_invalid_json_names_line_and_column() -> None:
    with pytest.raises(JsonTreeError) as caught:
        from_json_text('{"nodeType": "fnApply",\n "fnName" "="}')
    assert caught.value.message == "not valid JSON: Expecting ':' delimiter (line 2, column 11)"
    assert (caught.value.line, caught.value.col, caught.value.pointer) == (2, 11, "")


# --------------------------------------------------------------------------------------------------
# generated expressions over everything pql/json can write

_NAMES = st.sampled_from(["homeAddress", "country", "loyalty", "points", "_tenant", "and", "select", "seg-1", "now"])
_PATHS = st.lists(_NAMES, min_size=1, max_size=3).map(lambda s: ast.FieldPath(ast.Root.PROFILE, tuple(s)))
_UNITS = st.sampled_from(list(ast.TimeUnit))
#: Durations within the language's limit of 10,000 years (99 millennia would be refused at construction).
_DURATIONS = st.tuples(st.integers(0, 99), _UNITS).filter(
    lambda pair: not duration_too_long(pair[0], pair[1].value)).map(lambda pair: ast.Duration(*pair))
_AMOUNTS_400 = st.tuples(st.integers(0, 400), _UNITS).filter(lambda pair: not duration_too_long(pair[0], pair[1].value))
_ANCHORS = st.one_of(
    st.sampled_from([ast.CurrentTime(kind) for kind in ast.CurrentTimeKind]), _PATHS,
    st.dates(min_value=dt.date(1900, 1, 1)).map(ast.DateLiteral),
    st.datetimes(min_value=dt.datetime(1900, 1, 1), timezones=st.just(dt.UTC)).map(ast.DateTimeLiteral),
)
_WINDOWS = st.one_of(
    st.builds(lambda op, amount_unit, direction, anchor: ast.RelativeWindow(op, *amount_unit, direction, anchor),
              st.sampled_from(list(ast.CompareOp)), _AMOUNTS_400, st.sampled_from(list(ast.Direction)), _ANCHORS),
    st.builds(ast.PointWindow, st.sampled_from(list(ast.Direction)), _ANCHORS),
    st.builds(ast.OnWindow, _ANCHORS),
    st.builds(ast.BetweenWindow, _ANCHORS, _ANCHORS),
    st.builds(ast.PeriodWindow, st.sampled_from(list(ast.PeriodRelation)),
              st.sampled_from([u for u in ast.TimeUnit if u not in (ast.TimeUnit.MILLISECOND, ast.TimeUnit.SECOND)])),
)
_LEAVES = st.one_of(
    _PATHS, st.text(max_size=6).map(ast.StringLiteral), st.integers(-10**6, 10**6).map(ast.NumberLiteral),
    st.integers(-10**4, 10**4).map(lambda n: ast.NumberLiteral(n / 8)), st.booleans().map(ast.BooleanLiteral),
    st.just(ast.NullLiteral()), _ANCHORS, _DURATIONS,
    st.builds(ast.InSegment, st.text("ab-1", min_size=1, max_size=4), st.sampled_from(["ups", "aam"])),
)
_CALLS = [("lower", 0), ("equals", 1), ("startsWith", 2), ("abs", 0), ("getYear", 0), ("regexGroup", 2),
          ("containsKey", 1), ("isNull", 0), ("first", 1), ("anniversary", 0), ("exists", 0)]


def _extend(children: st.SearchStrategy[ast.Expr]) -> st.SearchStrategy[ast.Expr]:
    two = st.tuples(children, children)
    return st.one_of(
        st.builds(ast.Compare, st.sampled_from(list(ast.CompareOp)), children, children),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: ast.And(tuple(xs))),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: ast.Or(tuple(xs))),
        children.map(ast.Not),
        st.builds(ast.In, children, st.lists(children, max_size=3).map(lambda xs: ast.ArrayLiteral(tuple(xs))),
                  st.booleans()),
        two.map(lambda p: ast.Like(*p)),
        st.tuples(children, children, children).map(lambda p: ast.If(*p)),
        st.builds(ast.Arithmetic, st.sampled_from(list(ast.ArithOp)), children, children),
        _PATHS.map(ast.Negate),
        st.builds(ast.Occurs, children, _WINDOWS),
        st.builds(ast.Aggregate, st.sampled_from(list(ast.AggregateKind)), _PATHS),
        st.sampled_from(_CALLS).flatmap(lambda c: st.lists(children, min_size=c[1], max_size=c[1]).flatmap(
            lambda args: children.map(lambda target: ast.Call(c[0], target, tuple(args))))),
        st.lists(children, min_size=1, max_size=3).map(lambda xs: ast.Call("concat", None, tuple(xs))),
    )


EXPRESSIONS = st.recursive(_LEAVES, _extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(EXPRESSIONS)
def test_generated_expressions_round_trip_text_json_text(generated: ast.Expr) -> None:
    expr = parse(to_text(generated))  # the parser's spelling of the generated tree
    assert_round_trip(expr)
    assert from_json(json.loads(to_json_text(expr))) == expr
