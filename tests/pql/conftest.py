"""Fixtures shared by the PQL compiler tests: generated data, engines, the shared Spark session."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pytest

from openseg.engines.duckdb import DuckDBEngine
from openseg.engines.spark import SparkEngine, get_spark_session
from tests.pql.datagen import AS_OF, Dataset, generate


@pytest.fixture(scope="session")
def as_of():  # type: ignore[no-untyped-def]
    """The evaluation time of every generated dataset."""
    return AS_OF


@pytest.fixture(scope="session")
def dataset() -> Dataset:
    """The seeded dataset the differential corpus runs over."""
    return generate(seed=20240615, n_profiles=400)


@pytest.fixture(scope="session")
def tables(dataset: Dataset) -> dict[str, pa.Table]:
    """The dataset's relations as Arrow tables (``profiles``, ``events``, ``membership``)."""
    return dataset.tables()


@pytest.fixture(scope="session")
def duckdb_engine() -> DuckDBEngine:
    """A two-thread DuckDB engine (the machine has two cores)."""
    return DuckDBEngine(threads=2)


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """The process-wide SparkSession; tests using it must be in xdist group "spark"."""
    yield get_spark_session()


@pytest.fixture(scope="session")
def spark_engine(spark: object) -> SparkEngine:
    """A Spark engine on the shared session."""
    return SparkEngine()
