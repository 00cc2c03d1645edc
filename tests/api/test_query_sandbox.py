"""The Query Service reads the caller's sandbox's datasets and nothing else: no files, settings, catalog or
other sandboxes (issue #19, deliverable 5)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.conftest import Org

QUERIES = "/data/foundation/query/queries"


def run(client: TestClient, org: Org, drain: Callable[[], int], sql: str, sandbox: str = "prod") -> list[list[object]]:
    created = client.post(QUERIES, headers=org.headers(sandbox), json={"sql": sql})
    assert created.status_code == 202, created.text
    drain()
    query = client.get(f"{QUERIES}/{created.json()['id']}", headers=org.headers(sandbox)).json()
    assert query["state"] == "SUCCESS", query
    rows = client.get(f"{QUERIES}/{query['id']}/results", headers=org.headers(sandbox)).json()["rows"]
    return list(rows)


def refused(client: TestClient, org: Org, sql: str, naming: str, sandbox: str = "prod") -> None:
    response = client.post(QUERIES, headers=org.headers(sandbox), json={"sql": sql})
    body = assert_aep_error(response, 400, detail_contains=naming)
    assert body["report"]["field"] == "sql"


@pytest.fixture
def people(client: TestClient, org: Org, drain: Callable[[], int]) -> str:
    dataset_id = create_dataset(client, org.headers(), "people")
    upload_batch(client, org.headers(), dataset_id, {"people.json": json_lines([person(i) for i in range(4)])})
    drain()
    return dataset_id


def test_own_tables_and_ctes_are_read(client: TestClient, org: Org, drain: Callable[[], int], people: str) -> None:
    assert run(client, org, drain, "SELECT count(*) FROM people") == [[4]]
    assert run(client, org, drain, "WITH a AS (SELECT * FROM people), b AS (SELECT * FROM a) "
                                   "SELECT count(*) FROM b") == [[4]]
    assert run(client, org, drain, "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) "
                                   "SELECT max(n) FROM r") == [[3]]
    assert run(client, org, drain, "SELECT count(*) FROM (WITH a AS (SELECT * FROM people) SELECT * FROM a)") == [[4]]


@pytest.mark.parametrize(("sql", "naming"), [
    ("SELECT * FROM read_parquet('/tmp/*.parquet')", "read_parquet()"),
    ("SELECT * FROM parquet_scan('/tmp/x.parquet')", "parquet_scan()"),
    ("SELECT * FROM read_csv('/etc/passwd')", "read_csv()"),
    ("SELECT * FROM read_csv_auto('/etc/passwd')", "read_csv_auto()"),
    ("SELECT * FROM read_json('/etc/passwd')", "read_json()"),
    ("SELECT * FROM read_text('/etc/passwd')", "read_text()"),
    ("SELECT * FROM read_blob('/etc/passwd')", "read_blob()"),
    ("SELECT * FROM glob('/*')", "glob()"),
    ("SELECT * FROM people, LATERAL read_json('/etc/passwd')", "read_json()"),
    ("SELECT (SELECT count(*) FROM glob('/*')) FROM people", "glob()"),
    ("SELECT * FROM query('SELECT 1')", "query()"),
    ("SELECT * FROM duckdb_settings()", "duckdb_settings()"),
    ("SELECT * FROM duckdb_views()", "duckdb_views()"),
    ("SELECT * FROM pragma_database_list()", "pragma_database_list()"),
    ("SELECT current_setting('allowed_directories')", "current_setting()"),
    ("SELECT * FROM people WHERE current_setting('temp_directory') IS NOT NULL", "current_setting()"),
    ("SELECT getenv('HOME')", "getenv()"),
    ("SELECT * FROM '/etc/passwd'", "'/etc/passwd' is a file path"),
    ("SELECT * FROM '../../other/people.parquet'", "'../../other/people.parquet' is a file path"),
    ("SELECT * FROM 'people.parquet'", "'people.parquet' is a file path"),
    ("SELECT * FROM main.people", "'main.people' is a qualified table name"),
    ("SELECT * FROM information_schema.tables", "qualified table name"),
    ("SELECT * FROM duckdb_views", "unknown table 'duckdb_views'"),
    ("ATTACH '/tmp/other.db' AS other", "ATTACH is not available"),
    ("COPY people TO '/tmp/out.csv'", "COPY is not available"),
    ("COPY (SELECT 1) TO '/tmp/out.csv'", "COPY is not available"),
    ("INSTALL httpfs", "INSTALL is not available"),
    ("LOAD httpfs", "LOAD is not available"),
    ("SET threads = 1", "SET is not available"),
    ("SET allowed_directories = ['/']", "SET is not available"),
    ("PRAGMA database_list", "PRAGMA is not available"),
    ("DESCRIBE people", "DESCRIBE is not available"),
    ("SHOW TABLES", "SHOW is not available"),
])
def test_files_settings_and_the_catalog_are_refused_naming_what(client: TestClient, org: Org, people: str,
                                                                sql: str, naming: str) -> None:
    refused(client, org, sql, naming)


def test_a_same_named_cte_in_another_scope_does_not_make_a_table_readable(client: TestClient, org: Org,
                                                                          people: str) -> None:
    """Regression: CTE names were collected over the whole query, so a CTE named ``duckdb_views`` inside a
    subquery let the outer query read DuckDB's ``duckdb_views`` catalog view (the server's Parquet paths)."""
    refused(client, org, "SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT * FROM duckdb_views) AS x, "
                         "duckdb_views", "unknown table 'duckdb_views'")
    refused(client, org, "WITH a AS (SELECT * FROM duckdb_tables), duckdb_tables AS (SELECT 1) SELECT * FROM a",
            "unknown table 'duckdb_tables'")
    refused(client, org, "SELECT * FROM people WHERE EXISTS (WITH duckdb_views AS (SELECT 1) SELECT 1) "
                         "UNION ALL SELECT * FROM duckdb_views", "unknown table 'duckdb_views'")


def test_current_setting_does_not_reveal_server_paths(client: TestClient, org: Org, people: str) -> None:
    """Regression: ``current_setting('allowed_directories')`` answered the lake's directory on the server."""
    refused(client, org, "SELECT current_setting('allowed_directories') AS dirs", "current_setting()")
    refused(client, org, "SELECT current_setting('temp_directory') AS dirs FROM people", "current_setting()")


def test_another_sandboxs_datasets_and_files_are_out_of_reach(client: TestClient, org: Org, services: Services,
                                                              drain: Callable[[], int], people: str) -> None:
    created = client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                          json={"name": "dev", "title": "Dev", "type": "development"})
    assert created.status_code == 201, created.text
    create_dataset(client, org.headers("dev"), "dev_people")
    (prod_file,) = (p for p in Path(services.settings.lake).rglob("*.parquet") if people in str(p))
    refused(client, org, "SELECT * FROM people", "unknown table 'people'; tables: dev_people", sandbox="dev")
    refused(client, org, f"SELECT * FROM read_parquet('{prod_file}')", "read_parquet()", sandbox="dev")
    refused(client, org, f"SELECT * FROM '{prod_file}'", f"'{prod_file}' is a file path", sandbox="dev")
    refused(client, org, f"SELECT * FROM '{prod_file.parent}/../*/*.parquet'", "is a file path", sandbox="dev")
    # The sandbox's own tables still answer, and prod's data is not among them.
    assert run(client, org, drain, "SELECT count(*) FROM dev_people", sandbox="dev") == [[0]]
