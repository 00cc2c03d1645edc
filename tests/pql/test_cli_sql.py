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
