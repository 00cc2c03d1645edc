"""The engine interface on DuckDB and Spark: registration of Arrow and Parquet relations, results as Arrow."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlglot import exp

from openseg.engines.base import Engine
from openseg.engines.duckdb import DuckDBEngine
from openseg.engines.spark import SparkEngine, get_spark_session
from openseg.pql.errors import NotSupportedOnEngine

spark_only = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

PEOPLE = pa.table(
    {
        "_profile_id": pa.array(["a", "b", "c"]),
        "country": pa.array(["US", None, "FR"]),
        "seen": pa.array([dt.datetime(2024, 1, 1), None, dt.datetime(2024, 6, 1)], pa.timestamp("us")),
    }
)
QUERY = (
    exp.select("_profile_id", exp.alias_(exp.column("country").eq(exp.Literal.string("US")), "is_us"))
    .from_("people")
    .order_by("_profile_id")
)
EXPECTED = [
    {"_profile_id": "a", "is_us": True},
    {"_profile_id": "b", "is_us": None},
    {"_profile_id": "c", "is_us": False},
]


def engines() -> list[object]:
    return [
        pytest.param("duckdb", id="duckdb"),
        pytest.param("spark", id="spark", marks=spark_only),
    ]


@pytest.fixture
def engine(request: pytest.FixtureRequest) -> Engine:
    return request.getfixturevalue(f"{request.param}_engine")  # type: ignore[no-any-return]


@pytest.mark.parametrize("engine", engines(), indirect=True)
def test_runs_over_arrow_table(engine: Engine) -> None:
    result = engine.run(QUERY, {"people": PEOPLE})
    assert result.to_pylist() == EXPECTED


@pytest.mark.parametrize("engine", engines(), indirect=True)
def test_runs_over_parquet_file_and_directory(engine: Engine, tmp_path: Path) -> None:
    pq.write_table(PEOPLE.slice(0, 2), tmp_path / "part-00000.parquet")
    pq.write_table(PEOPLE.slice(2), tmp_path / "part-00001.parquet")
    assert engine.run(QUERY, {"people": tmp_path}).to_pylist() == EXPECTED
    single = tmp_path / "part-00000.parquet"
    assert engine.run(QUERY, {"people": str(single)}).to_pylist() == EXPECTED[:2]


@pytest.mark.parametrize("engine", engines(), indirect=True)
def test_timestamps_come_back_as_utc_instants(engine: Engine) -> None:
    query = exp.select("seen").from_("people").where(exp.column("_profile_id").eq(exp.Literal.string("c")))
    (value,) = engine.run(query, {"people": PEOPLE}).column("seen").to_pylist()
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    assert value == dt.datetime(2024, 6, 1)


#: Directories whose names a URI must escape (a space, ``%``, ``#``), or must not (``+``, non-ASCII letters).
AWKWARD_NAMES = ("a b", "x+y", "50%", "n#1", "café")


def numbered_rows(engine: Engine, tmp_path: Path) -> list[dict[str, object]]:
    """Files under awkward names registered with ``register_numbered``: every row with its file's number and its
    position in the file."""
    files = []
    for number, name in enumerate(AWKWARD_NAMES, start=10):
        path = tmp_path / name / "events.parquet"
        path.parent.mkdir(parents=True)
        pq.write_table(pa.table({"v": [f"{name}:{row}" for row in range(number - 8)]}), path)
        files.append((number, str(path)))
    with engine.workspace() as workspace:
        workspace.register_numbered("numbered", files, "file", "row")
        return workspace.fetch(exp.select("v", "file", "row").from_("numbered").order_by("file", "row")).to_pylist()


NUMBERED = [{"v": f"{name}:{row}", "file": number, "row": row}
            for number, name in enumerate(AWKWARD_NAMES, start=10) for row in range(number - 8)]


@pytest.mark.parametrize("engine", engines(), indirect=True)
def test_numbered_files_keep_their_numbers_under_any_name(engine: Engine, tmp_path: Path) -> None:
    assert numbered_rows(engine, tmp_path) == NUMBERED
    assert len(NUMBERED) == 2 + 3 + 4 + 5 + 6


@pytest.mark.parametrize("engine", engines(), indirect=True)
def test_rows_are_numbered_in_the_order_of_a_column_across_partitions(engine: Engine) -> None:
    """A profile build numbers its identities in key order (``__ids``): on Spark in sorted ranges, one per
    partition, with no partition holding them all."""
    keys = [f"k{n:06d}" for n in random.Random(3).sample(range(1_000_000), 5_000)]
    table = pa.table({"key": keys, "v": list(range(len(keys)))})
    spark = get_spark_session() if isinstance(engine, SparkEngine) else None
    if spark is not None:  # every range stays a partition of its own, however small
        spark.conf.set("spark.sql.adaptive.coalescePartitions.enabled", "false")
    try:
        with engine.workspace() as workspace:
            workspace.register("t", table)
            workspace.materialize_numbered("numbered", exp.select("v", "key").from_("t"), "key", "iid")
            result = workspace.fetch(exp.select(exp.Star()).from_("numbered"))
    finally:
        if spark is not None:
            spark.conf.unset("spark.sql.adaptive.coalescePartitions.enabled")
    assert result.column_names == ["iid", "v", "key"]
    ordered = sorted(zip(keys, range(len(keys)), strict=True))
    expected = [{"iid": position, "v": v, "key": key} for position, (key, v) in enumerate(ordered)]
    assert sorted(result.to_pylist(), key=lambda row: row["iid"]) == expected


def test_duckdb_numbers_rows_spread_over_many_row_groups_in_order_under_a_build_s_settings(tmp_path: Path) -> None:
    """A build's DuckDB (two threads, a memory limit, ``preserve_insertion_order`` off) numbers 600,000 identities
    (five of DuckDB's row groups) by their key, as the window did; dropping the numbered view drops its table."""
    rng = random.Random(11)
    keys = [f"ns{rng.randrange(3)}:{rng.getrandbits(48):x}-{n}" for n in range(600_000)]
    table = pa.table({"key": keys, "n": list(range(len(keys)))})
    engine = DuckDBEngine(threads=2).with_limits("256MB", tmp_path / "spill")
    with engine.workspace() as workspace:
        workspace.register("t", table)
        workspace.materialize_numbered("numbered", exp.select("n", "key").from_("t"), "key", "iid")
        result = workspace.fetch(exp.select(exp.Star()).from_("numbered"))
        workspace.drop("numbered")
        left = workspace.fetch(exp.select(exp.column("table_name")).from_("duckdb_tables"))
    assert result.column_names == ["iid", "n", "key"]
    rank = {key: position for position, key in enumerate(sorted(keys))}
    numbered = result.to_pydict()
    assert sorted(numbered["iid"]) == list(range(len(keys)))
    assert all(rank[key] == iid for key, iid in zip(numbered["key"], numbered["iid"], strict=True))
    assert left.num_rows == 0


def test_a_filtered_group_by_on_a_sorted_parquet_key_is_planned_as_one_aggregate(tmp_path: Path) -> None:
    """DuckDB 2.0's ``partitioned_execution`` would split this GROUP BY (24M rows sorted by a text key, as events
    are by ``_profile_id``) into one aggregate per key range, each re-reading every row group under the WHERE:
    at 10M profiles that made a job's event scans 10x slower. The engine plans it as one aggregate, and the
    Query Service's connections turn the optimizer off too."""
    import duckdb

    from openseg.catalog.read_only_sql import run_query

    path = tmp_path / "events.parquet"
    with duckdb.connect() as connection:
        connection.execute(
            "COPY (SELECT lpad((i // 8)::VARCHAR, 9, '0') AS _profile_id, (i % 3)::TINYINT AS kind "
            f"FROM range(24000000) r(i)) TO '{path}'")
    with DuckDBEngine(threads=2).connect() as connection:
        plan = connection.execute(
            f"EXPLAIN SELECT _profile_id, count(*) FROM read_parquet('{path}') WHERE kind = 1 GROUP BY 1"
        ).fetchall()[0][1]
    assert plan.count("Hash Group By") == 1 and "Union" not in plan
    setting = run_query("SELECT current_setting('disabled_optimizers') AS disabled", {}, tmp_path)
    assert setting.table.to_pylist() == [{"disabled": "partitioned_execution"}]


def test_renders_in_its_dialect() -> None:
    plan = exp.select(exp.func("array_size", exp.column("xs"))).from_("t")
    assert DuckDBEngine().render(plan) == "SELECT ARRAY_LENGTH(xs) FROM t"
    assert SparkEngine().render(plan) == "SELECT SIZE(xs) FROM t"


def test_duckdb_relation_names_are_identifiers_not_sql(tmp_path: Path) -> None:
    pq.write_table(PEOPLE, tmp_path / "p.parquet")
    name = "people; DROP TABLE x"
    query = exp.select(exp.Count(this=exp.Star())).from_(exp.to_table(exp.to_identifier(name, quoted=True)))
    assert DuckDBEngine().run(query, {name: tmp_path / "p.parquet"}).column(0).to_pylist() == [3]


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_drops_its_temporary_views(spark_engine: SparkEngine) -> None:
    spark_engine.run(QUERY, {"people": PEOPLE})
    assert [t.name for t in get_spark_session().catalog.listTables() if t.name == "people"] == []


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_spark_session_is_shared_and_configured(spark_engine: SparkEngine) -> None:
    session = get_spark_session()
    assert session is get_spark_session()
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.sql.shuffle.partitions") == "4"


def test_not_supported_on_engine_names_engine_and_construct() -> None:
    error = NotSupportedOnEngine("spark", "regexGroup", "no group extraction")
    assert (error.engine, error.construct) == ("spark", "regexGroup")
    assert str(error) == "regexGroup is not supported on spark: no group extraction"
    assert str(NotSupportedOnEngine("duckdb", "chain")) == "chain is not supported on duckdb"


def test_jobs_run_with_the_configured_memory_limit_and_spill_under_home(tmp_path: Path) -> None:
    from openseg.bootstrap import build_services
    from openseg.config import Settings

    settings = Settings.from_env(home=tmp_path, env={"OPENSEG_JOB_MEMORY_LIMIT": "300MB"})
    services = build_services(settings)
    try:
        engine = services.engine()
        assert isinstance(engine, DuckDBEngine)
        with engine.connect() as connection:
            limit, spill = connection.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory')").fetchone() or ("", "")
        assert limit == "286.1 MiB" and spill == str(tmp_path / "tmp")
        unset = Settings.from_env(home=tmp_path, env={})
        assert unset.job_memory_limit is None
    finally:
        services.db.dispose()
