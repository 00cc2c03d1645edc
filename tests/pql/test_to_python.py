"""The Python backend on hand-written profiles: the semantics users see one profile at a time."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openseg.pql import _py_calls, ast, functions, parse
from openseg.pql._py_context import Env
from openseg.pql._py_values import aggregate_values, arithmetic, round_half_away
from openseg.pql.to_python import compile_predicate

UTC = dt.UTC
AS_OF = dt.datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def holds(text: str, profile: dict[str, Any] | None = None, events: list[dict[str, Any]] | None = None,
          as_of: dt.datetime = AS_OF) -> bool:
    return compile_predicate(parse(text), as_of)(profile or {}, events or [])


def event(event_type: str, at: dt.datetime, **fields: Any) -> dict[str, Any]:
    return {"eventType": event_type, "timestamp": at, **fields}


@pytest.mark.parametrize(("text", "expected"), [
    ('homeAddress.country = "US"', False),
    ('homeAddress.country != "US"', False),
    ('not (homeAddress.country = "US")', True),
    ('homeAddress.country notIn ["US"]', False),
    ('not (homeAddress.country in ["US"])', True),
    ("person.birthDate.isNull()", True),
    ('homeAddress.country.doesNotStartWith("U")', False),
    ("favoriteCategories.isEmpty()", True),
    ("favoriteCategories.count() = 0", True),
    ("scores.sum() = 0", True),
    ("scores.average() = 0", False),
    ('favoriteCategories.all(c => c = "x")', True),
    ('favoriteCategories.any(c => c = "x")', False),
    ("xEvent.count() = 0", True),
    ('forall E from xEvent where E.eventType = "x"', True),
    ("loyalty.points / 0 > 1", False),
    ("not (loyalty.points / 0 > 1)", True),
])
def test_missing_values_are_two_valued(text: str, expected: bool) -> None:
    assert holds(text, {"homeAddress": {}}) is expected


def test_case_insensitive_string_tests() -> None:
    profile = {"personalEmail": {"address": "John@Example.COM"}}
    assert holds('personalEmail.address.endsWith("@example.com", false)', profile)
    assert not holds('personalEmail.address.endsWith("@example.com")', profile)
    assert holds('personalEmail.address.equals("john@example.com", false)', profile)
    assert holds('personalEmail.address.doesNotContain("EXAMPLE")', profile)


def test_like_escapes_everything_but_its_wildcards() -> None:
    assert holds('person.name.firstName like "a.c%"', {"person": {"name": {"firstName": "a.cde"}}})
    assert not holds('person.name.firstName like "a.c%"', {"person": {"name": {"firstName": "abcde"}}})
    assert holds('person.name.firstName like "_b"', {"person": {"name": {"firstName": "\nb"}}})


def test_relative_windows_include_their_edges() -> None:
    at = {"loyalty": {"joinDate": AS_OF - dt.timedelta(days=30)}}
    assert holds("loyalty.joinDate occurs <= 30 days before now", at)
    assert not holds("loyalty.joinDate occurs < 30 days before now", at)
    assert holds("loyalty.joinDate occurs >= 30 days before now", at)
    assert not holds("loyalty.joinDate occurs > 30 days before now", at)
    assert holds("loyalty.joinDate occurs = 30 days before now", {"loyalty": {"joinDate": AS_OF - dt.timedelta(days=30, hours=11)}})


def test_calendar_periods_are_utc() -> None:
    assert holds("loyalty.joinDate occurs today", {"loyalty": {"joinDate": dt.datetime(2024, 6, 15, tzinfo=UTC)}})
    assert not holds("loyalty.joinDate occurs today",
                     {"loyalty": {"joinDate": dt.datetime(2024, 6, 15, 1, tzinfo=dt.timezone(dt.timedelta(hours=2)))}})
    assert holds("loyalty.joinDate occurs last month", {"loyalty": {"joinDate": dt.datetime(2024, 5, 31, 23, 59)}})
    assert holds("loyalty.joinDate occurs this week", {"loyalty": {"joinDate": dt.date(2024, 6, 10)}})
    assert not holds("loyalty.joinDate occurs this week", {"loyalty": {"joinDate": dt.date(2024, 6, 9)}})


def test_months_clamp_to_the_end_of_the_month() -> None:
    as_of = dt.datetime(2024, 3, 31, tzinfo=UTC)
    assert holds("loyalty.joinDate occurs <= 1 month before now", {"loyalty": {"joinDate": dt.datetime(2024, 2, 29, tzinfo=UTC)}}, as_of=as_of)
    assert not holds("loyalty.joinDate occurs <= 1 month before now", {"loyalty": {"joinDate": dt.datetime(2024, 2, 28, 23, tzinfo=UTC)}}, as_of=as_of)


def test_age_and_anniversary_use_the_evaluation_day() -> None:
    assert holds("age(person.birthDate) = 18", {"person": {"birthDate": dt.date(2006, 6, 15)}})
    assert holds("age(person.birthDate) = 17", {"person": {"birthDate": dt.date(2006, 6, 16)}})
    assert holds("person.birthDate.anniversary()", {"person": {"birthDate": dt.date(1990, 6, 15)}})


def test_event_aggregates_sum_exact_decimals() -> None:
    events = [event("buy", AS_OF, commerce={"order": {"priceTotal": 0.1}}) for _ in range(3)]
    assert holds("xEvent.sum(commerce.order.priceTotal) = 0.3", {}, events)
    assert aggregate_values(ast.AggregateKind.SUM, [0.1, 0.2, None]) == Decimal("0.300000")
    assert aggregate_values(ast.AggregateKind.AVG, [1, 2, 2]) == pytest.approx(5 / 3)
    assert aggregate_values(ast.AggregateKind.MAX, []) is None


def test_event_filters_and_quantifiers() -> None:
    events = [
        event("commerce.purchases", AS_OF - dt.timedelta(days=2), productListItems=[{"name": "Tent"}]),
        event("commerce.productViews", AS_OF - dt.timedelta(days=40)),
    ]
    assert holds('xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now].count() = 1', {}, events)
    assert holds('xEvent[productListItems.exists(name.equals("tent", false))]', {}, events)
    assert not holds("xEvent.all(timestamp occurs in last 30 days)", {}, events)
    assert holds('exists E from xEvent where E.eventType = "commerce.productViews"', {}, events)
    naive = [event("x", (AS_OF - dt.timedelta(hours=1)).replace(tzinfo=None))]
    assert holds("xEvent[timestamp occurs today].count() = 1", {}, naive)


CHAIN = ('chain(xEvent, timestamp, [C0: WHAT(eventType = "view"), C1: WHAT(eventType = "cart") not, '
         'C2: WHAT(eventType = "buy") WHEN(<= 1 day after C0)])')


@pytest.mark.parametrize(("types_and_hours", "expected"), [
    ([("view", 0), ("buy", 5)], True),
    ([("view", 0), ("cart", 2), ("buy", 5)], False),
    ([("view", 0), ("cart", 2), ("view", 3), ("buy", 5)], True),
    ([("view", 0), ("buy", 30)], False),
    ([("buy", 0), ("view", 5)], False),
    ([("view", 0), ("buy", 0)], False),
])
def test_chain_orders_steps_and_honours_negation(types_and_hours: list[tuple[str, int]], expected: bool) -> None:
    start = AS_OF - dt.timedelta(days=5)
    events = [event(kind, start + dt.timedelta(hours=hours)) for kind, hours in types_and_hours]
    assert holds(CHAIN, {}, events) is expected


@pytest.mark.parametrize(("status", "expected"), [
    ("realized", True), ("existing", True), ("exited", False), ("Realized", False),
])
def test_in_segment_reads_current_membership(status: str, expected: bool) -> None:
    profile = {"segmentMembership": {"ups": {"s1": {"status": status}}}}
    assert holds('inSegment("s1")', profile) is expected
    assert not holds('inSegment("s2")', profile)


def test_sql_style_arithmetic() -> None:
    assert arithmetic(ast.ArithOp.MOD, -7, 3) == -1
    assert arithmetic(ast.ArithOp.MOD, 7, -3) == 1
    assert arithmetic(ast.ArithOp.DIV, 7, 2) == 3.5
    assert arithmetic(ast.ArithOp.DIV, 7, 0) is None
    assert arithmetic(ast.ArithOp.ADD, Decimal("1.5"), 0.25) == 1.75
    assert round_half_away(2.5) == 3 and round_half_away(-2.5) == -3 and round_half_away(2.4999) == 2


def test_time_arithmetic_with_durations() -> None:
    assert holds("loyalty.joinDate < now - 3 days", {"loyalty": {"joinDate": AS_OF - dt.timedelta(days=4)}})
    assert holds("_lastModifiedAt > loyalty.joinDate + 1 month",
                 {"loyalty": {"joinDate": dt.date(2024, 1, 31)}, "_lastModifiedAt": dt.datetime(2024, 2, 29, 0, 1)})


def test_every_registry_call_has_a_python_translation() -> None:
    assert functions.call_names() <= _py_calls.handled_names()


def test_every_node_class_has_a_visit_method() -> None:
    from openseg.pql.to_python import PythonCompiler

    missing = {cls.__name__ for cls in ast.NODE_CLASSES if not hasattr(PythonCompiler, f"visit_{cls.__name__}")}
    assert missing == {"ChainStep", "RelativeWindow", "PointWindow", "OnWindow", "BetweenWindow", "PeriodWindow"}


@pytest.mark.parametrize(("left", "op", "right", "expected"), [
    (["a", "b"], "=", ["a", "b"], True), (["a", "b"], "=", ["b", "a"], False), ([], "=", [], True),
    ([1, 2], "=", [1.0, 2.0], True), ([1, None], "=", [1, None], True), ([1, None], "!=", [1, 2], True),
    ([1], "!=", [1, 2], True), ([1], "!=", [1], False), (None, "!=", [1], False),
])
def test_arrays_compare_as_the_sql_engines_compare_them(left: object, op: str, right: object,
                                                       expected: bool) -> None:
    from openseg.pql._py_values import compare

    assert compare(ast.CompareOp(op), left, right) is expected


@given(item=st.one_of(st.none(), st.integers(), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)),
       variables=st.one_of(st.none(), st.dictionaries(st.sampled_from("xyz"), st.integers(), max_size=2)),
       steps=st.one_of(st.none(), st.dictionaries(st.sampled_from("ab"), st.datetimes(timezones=st.just(dt.UTC)),
                                                  max_size=2)))
def test_an_environment_moved_to_an_item_is_what_replace_makes(
        item: Any, variables: dict[str, int] | None, steps: dict[str, dt.datetime] | None) -> None:
    env = Env({"a": 1}, [{"eventType": "x"}], item="before", variables={"v": 0},
              steps={"s": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)}, as_of=dt.datetime(2026, 2, 1, tzinfo=dt.UTC))
    changes: dict[str, Any] = {"item": item}
    if variables is not None:
        changes["variables"] = variables
    if steps is not None:
        changes["steps"] = steps
    moved = env.at(item, variables, steps)
    assert moved == dataclasses.replace(env, **changes) and type(moved) is Env
    assert (env.item, env.variables) == ("before", {"v": 0})  # the original is unchanged


@pytest.mark.parametrize("text", [
    'xEvent[eventType = "buy"]',
    'select X from xEvent where X.eventType = "buy"',
    'homeAddress.country = "US" and xEvent[eventType = "buy"]',
])
def test_a_filter_used_as_a_condition_stops_at_its_first_match(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # "At least one": a profile with 1,000 purchases qualifies on its first; the others are not tested.
    events = [event("buy", AS_OF - dt.timedelta(minutes=n)) for n in range(1000)]
    tested: list[Any] = []
    real = Env.at

    def at(self: Env, item: Any, *args: Any, **kwargs: Any) -> Env:
        tested.append(item)
        return real(self, item, *args, **kwargs)

    monkeypatch.setattr(Env, "at", at)
    assert holds(text, {"homeAddress": {"country": "US"}}, events)
    assert tested == events[:1]
    assert not holds(text, {"homeAddress": {"country": "US"}}, [event("view", AS_OF)] * 3)
    assert len(tested) == 4  # with no match, each event is tested once
