"""``openseg pql sql``: what an engine cannot run is one line, not a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from openseg.pql_cli import app


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
def test_top_n_compiles_for_both_engines(dialect: str) -> None:
    text = "xEvent[productListItems.topN(priceTotal, 1).head().isNotNull()].count() > 0"
    result = CliRunner().invoke(app, ["sql", text, "--dialect", dialect])
    assert result.exit_code == 0, result.output
    assert "SELECT" in result.output


def test_a_value_of_each_event_used_as_a_list_is_an_error_not_a_traceback() -> None:
    result = CliRunner().invoke(app, ["sql", "xEvent.eventType.distinct().count() > 1", "--dialect", "spark"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.splitlines()[0] == (
        "line 1, col 1: xEvent.eventType is a value of each event, which can be compared (xEvent.a > 0: some event "
        "has it), tested or aggregated (xEvent.a.sum()); for more, write exists E from xEvent where E.a ...")
    assert "Traceback" not in result.output


def test_the_let_example_and_group_by_compile_for_spark() -> None:
    for text in ['let S = (sum X.commerce.order.priceTotal over X from xEvent where '
                 'X.commerce.order.currencyCode = "USD") in (S > 100 and S < 1000)',
                 'xEvent[productListItems.groupBy(SKU).get("SKU-1").count() >= 2].count() > 0',
                 "exists E from xEvent where E.eventType = homeAddress.country"]:
        result = CliRunner().invoke(app, ["sql", text, "--dialect", "spark"])
        assert result.exit_code == 0, result.output
        assert "SELECT" in result.output


REFUSED = [
    ('$2.homeAddress.country = "US"', "line 1, col 1: unknown input reference $2; only $1 (the profile) exists"),
    ("xEvent.eventType", "line 1, col 1: xEvent.eventType is a value of each event, which can be compared (xEvent.a > "
     "0: some event has it), tested or aggregated (xEvent.a.sum()); for more, write exists E from xEvent where E.a ..."),
    ("organizations.name.count() > 1", "line 1, col 1: organizations is an array of strings and has no field name"),
    ("homeAddress.country.startsWith(x => x)",
     "line 1, col 32: startsWith takes no lambda (x => ...) here; lambdas go to map, filter, topN, bottomN, "
     "groupBy, aggregates and quantifiers"),
    ("xEvent.sum(x => x.commerce.order.priceTotal * x) > 1",
     "line 1, col 47: use a field of x here (or aggregate x itself alone)"),
    ('xEvent[productListItems[^^^.eventType = "a"]]',
     "line 1, col 25: '^^^' goes 3 levels up, but there are only 2 levels above it (the last is the profile)"),
    ("xEvent[productListItems.groupBy(quantity).keys().count() > 1].count() > 0",
     "line 1, col 33: quantity is a number; the key of groupBy() must be a string"),
    ('chain(xEvent, timestamp, [A: WHAT(eventType = "a") COUNT(2), B: WHAT(eventType = "b")])',
     "line 1, col 58: COUNT(n) is supported in a chain of one step that is not negated (at least n such events); "
     "for more, compare xEvent[...].count()"),
    ("exists E from xEvent where xEvent.count() > 1",
     "error: nested event list is not supported on {dialect}: an event condition cannot read xEvent again"),
    ("3 days > 1", "line 1, col 1: 3 days is a duration; a duration can only be added to or subtracted from a date or a "
                   "time (now - 3 days), or bound an occurs window"),
]


@pytest.mark.parametrize("dialect", ["duckdb", "spark"])
@pytest.mark.parametrize(("text", "first_line"), REFUSED, ids=[text for text, _ in REFUSED])
def test_every_refused_construct_is_an_error_line_not_a_traceback(text: str, first_line: str, dialect: str) -> None:
    result = CliRunner().invoke(app, ["sql", text, "--dialect", dialect])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output.splitlines()[0] == first_line.format(dialect=dialect)
    assert "Traceback" not in result.output


def test_the_reference_constructs_of_issue_14_compile_for_both_engines() -> None:
    for text in ['xEvent[productListItems[SKU = "PS" or ^^.person.gender = "female"]]',
                 'identityMap.email.id.includes("a@example.com")',
                 'xEvent.filter(e => e.eventType = "commerce.purchases").count() >= 2',
                 "let A = loyalty.points, B = A * 2 in B > 100"]:
        for dialect in ("duckdb", "spark"):
            result = CliRunner().invoke(app, ["sql", text, "--dialect", dialect])
            assert result.exit_code == 0, result.output
            assert "SELECT" in result.output
