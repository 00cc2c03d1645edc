"""``openseg pql sql``: what an engine cannot run is one line, not a traceback."""

from __future__ import annotations

from typer.testing import CliRunner

from openseg.pql_cli import app

TOP_N = "xEvent[productListItems.topN(priceTotal, 1).head().isNotNull()].count() > 0"


def test_a_construct_spark_cannot_run_is_one_line_and_exit_2() -> None:
    result = CliRunner().invoke(app, ["sql", TOP_N, "--dialect", "spark"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert result.output == ("error: topN is not supported on spark: arrays cannot be ordered by an item "
                             "expression consistently on Spark\n")


def test_the_same_expression_compiles_for_duckdb() -> None:
    result = CliRunner().invoke(app, ["sql", TOP_N, "--dialect", "duckdb"])
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
                 'xEvent[productListItems.groupBy(SKU).get("SKU-1").count() >= 2].count() > 0']:
        result = CliRunner().invoke(app, ["sql", text, "--dialect", "spark"])
        assert result.exit_code == 0, result.output
        assert "SELECT" in result.output
