"""Engine fixtures: one DuckDB engine and the process-wide Spark session."""

from __future__ import annotations

import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.engines.spark import SparkEngine, get_spark_session


@pytest.fixture(scope="session")
def duckdb_engine() -> DuckDBEngine:
    """A two-thread DuckDB engine."""
    return DuckDBEngine(threads=2)


@pytest.fixture(scope="session")
def spark_engine() -> SparkEngine:
    """A Spark engine on the shared session; tests using it must be in xdist group "spark"."""
    get_spark_session()
    return SparkEngine()
