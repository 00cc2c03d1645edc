"""Bad input answers a 4xx in AEP's error shape naming the field, never a 500 (issue 19's probe)."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openseg.api.errors import ErrorResponse
from tests.api.aep import assert_aep_error
from tests.conftest import Org

#: The write operations whose body is not JSON: a file upload (bytes) and a batch action (query string).
NOT_JSON = {
    ("PUT", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"),
    ("POST", "/data/foundation/import/batches/{batch_id}"),
    ("POST", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"),  # ?action=
    ("PATCH", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"),  # a part
}


#: Streaming inlets: JSON bodies, but errors in the Data Collection service's own shape (contract.md), not the
#: platform's; their bad bodies are tested in tests/streaming/test_collection.py.
INLETS = {("POST", "/collection/{inlet_id}"), ("POST", "/collection/batch/{inlet_id}")}


def json_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation that reads a JSON body, from the app's own route table (a new route is covered)."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if method.upper() in ("POST", "PUT", "PATCH") and (method.upper(), path) not in NOT_JSON | INLETS:
                routes.append((method.upper(), re.sub(r"\{[^}]+\}", "x1", path)))
    return routes


@pytest.fixture
def strict_client(app: FastAPI) -> TestClient:
    """A client that sees a 500 as the server answers it, rather than as the server's exception."""
    return TestClient(app, raise_server_exceptions=False)


def test_every_json_route_is_enumerated(app: FastAPI) -> None:
    routes = json_routes(app)
    assert len(routes) >= 18
    assert ("POST", "/data/core/ups/segment/definitions") in routes
    assert ("PATCH", "/data/core/ups/config/schedules/x1") in routes


BAD_BODIES = {
    "nested 10,000 deep": (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
    "objects nested 10,000 deep": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
    "UTF-16 byte order mark": (b'\xff\xfe{\x00}\x00', "not UTF-8"),
    "invalid UTF-8": (b'{"name": "\xc3\x28"}', "not UTF-8"),
    "UTF-8 byte order mark": (b'\xef\xbb\xbf{"name": "x"}', "byte order mark"),
    "NaN": (b'{"name": NaN}', "NaN is not a JSON number"),
    "a float beyond a double": (b'{"limit": 1e999}', "beyond the range of a double"),
    "5,000-digit integer": (b'{"limit": ' + b"9" * 5000 + b"}", "not acceptable JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_unreadable_bodies_are_400_on_every_json_route(app: FastAPI, strict_client: TestClient, org: Org,
                                                       case: str) -> None:
    raw, problem = BAD_BODIES[case]
    for method, path in json_routes(app):
        response = strict_client.request(method, path, headers=org.headers(), content=raw)
        body = assert_aep_error(response, 400, detail_contains=problem)
        assert body["report"]["field"] == "body", (method, path)


VALUE_PROBLEMS = {
    "a lone surrogate": (b'{"name": "x\\ud800y"}', "name", "lone UTF-16 surrogate"),
    "a lone surrogate deep inside": (b'{"expression": {"value": "\\udfff"}}', "expression.value",
                                     "lone UTF-16 surrogate"),
    "a lone surrogate in a key": (b'{"schema": {"\\ud800": 1}}', "schema", "lone UTF-16 surrogate"),
    "a lone surrogate in a list": (b'[{"segmentId": "\\ud800"}]', "[0].segmentId", "lone UTF-16 surrogate"),
    "an integer of 2^70": (b'{"ttlInDays": 1180591620717411303424}', "ttlInDays", "outside the 64-bit range"),
    "a negative integer of 2^70": (b'[{"value": -1180591620717411303424}]', "[0].value", "outside the 64-bit range"),
}


@pytest.mark.parametrize("case", sorted(VALUE_PROBLEMS))
def test_unstorable_values_are_400_naming_the_field_on_every_json_route(
        app: FastAPI, strict_client: TestClient, org: Org, case: str) -> None:
    raw, field, problem = VALUE_PROBLEMS[case]
    for method, path in json_routes(app):
        response = strict_client.request(method, path, headers=org.headers(), content=raw)
        body = assert_aep_error(response, 400, detail_contains=problem)
        assert body["report"]["field"] == field, (method, path)
        assert f"'{field}'" in body["detail"]


def test_nesting_beyond_the_limit_names_where_it_crosses_it(strict_client: TestClient, org: Org) -> None:
    nested = b'{"properties": ' + b"[" * 64 + b"]" * 64 + b"}"
    response = strict_client.post("/data/core/ups/config/schedules", headers=org.headers(), content=nested)
    body = assert_aep_error(response, 400, detail_contains="nested too deeply (at most 64 levels)")
    assert body["report"]["field"] == "properties" + "[0]" * 63


def test_64_levels_of_nesting_are_still_read(strict_client: TestClient, org: Org) -> None:
    """The limit refuses pathological bodies, not deep-ish ones: this one reaches the service's own check."""
    nested = b'{"name": "deep", "schemaRef": ' + b"[" * 62 + b"]" * 62 + b"}"
    response = strict_client.post("/data/foundation/catalog/dataSets", headers=org.headers(), content=nested)
    assert response.status_code == 400
    assert "nested too deeply" not in response.json()["detail"]


def test_an_error_quoting_a_lone_surrogate_still_renders() -> None:
    rendered = ErrorResponse({"detail": "segment '\ud800' was not found"}, status_code=404).body
    assert rendered == b'{"detail":"segment \'\\ud800\' was not found"}'


SCHEDULES = "/data/core/ups/config/schedules"
POLICIES = "/data/core/ups/config/mergePolicies"


@pytest.mark.parametrize(("operation", "field", "problem"), [
    ({"op": "add", "path": 1, "value": "n"}, "[0].path", "'path' must be a JSON Pointer string"),
    ({"op": "add", "path": ["name"], "value": "n"}, "[0].path", "'path' must be a JSON Pointer string"),
    ({"op": "add", "path": "name", "value": "n"}, "[0].path", "'path' must be a JSON Pointer string"),
    ({"op": 1, "path": "/name", "value": "n"}, "[0].op", "'op' must be one of add, remove"),
    ({"op": "bogus", "path": "/name"}, "[0].op", "'op' must be one of add, remove"),
    ({"op": "add", "path": "/name"}, "[0].value", "'add' needs 'value'"),
    ({"op": "move", "path": "/name"}, "[0].from", "'move' needs 'from'"),
    ({"op": "move", "from": 3, "path": "/name"}, "[0].from", "'from' must be a JSON Pointer string"),
    ({"op": "move", "from": "/type", "path": "/name"}, "[0].from", "from '/type' cannot be changed"),
    ("add /name", "[0]", "needs 'op' and 'path'"),
])
def test_malformed_patch_operations_are_400_naming_the_member(strict_client: TestClient, org: Org,
                                                             operation: object, field: str, problem: str) -> None:
    created = strict_client.post(SCHEDULES, headers=org.headers(), json={
        "name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
        "schedule": "0 0 1 * * ?", "state": "inactive"}).json()
    default_policy = strict_client.get(POLICIES, headers=org.headers()).json()["children"][0]["id"]
    for path in (f"{SCHEDULES}/{created['id']}", f"{POLICIES}/{default_policy}"):
        response = strict_client.patch(path, headers=org.headers(), json=[operation])
        body = assert_aep_error(response, 400, detail_contains=problem)
        assert body["report"]["field"] == field, path


@pytest.mark.parametrize(("operations", "problem"), [
    ([{"op": "add", "path": "/properties/segments/99", "value": "x"}], "can't insert outside of list"),
    ([{"op": "add", "path": "/properties/segments/²", "value": "x"}], "not a valid sequence index"),
    ([{"op": "replace", "path": "/state/x", "value": 1}], "non-container"),
    ([{"op": "test", "path": "/name", "value": "active"}], "not equal"),
])
def test_patches_that_cannot_apply_are_400(strict_client: TestClient, org: Org, operations: list[object],
                                           problem: str) -> None:
    created = strict_client.post(SCHEDULES, headers=org.headers(), json={
        "name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
        "schedule": "0 0 1 * * ?", "state": "inactive"}).json()
    response = strict_client.patch(f"{SCHEDULES}/{created['id']}", headers=org.headers(), json=operations)
    body = assert_aep_error(response, 400, detail_contains=problem)
    assert body["report"]["field"] == "body"


EXPORTS = "/data/core/ups/export/jobs"


@pytest.mark.parametrize("job_id", ["²", "٣", "1_0", "99999999999999999999", "9" * 5000, "-1"])
def test_export_job_ids_that_are_not_ascii_integers_are_404(strict_client: TestClient, org: Org, job_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = strict_client.request(method, f"{EXPORTS}/{job_id}", headers=org.headers())
        assert_aep_error(response, 404, detail_contains="export job")


PAGING_VALUES = ["²", "99999999999999999999", "-99999999999999999999", "9" * 5000]


def test_paging_numbers_are_never_a_500_on_any_route(app: FastAPI, strict_client: TestClient, org: Org) -> None:
    gets = [re.sub(r"\{[^}]+\}", "x1", path) for path, operations in app.openapi()["paths"].items()
            if path.startswith("/data/") and "get" in operations]
    assert len(gets) >= 15
    for path in gets:
        for name in ("start", "limit", "page", "offset"):
            for value in PAGING_VALUES:
                response = strict_client.get(path, headers=org.headers(), params={name: value})
                assert response.status_code < 500, (path, name, value, response.text)
                if response.status_code == 400:
                    assert_aep_error(response, 400)


@pytest.mark.parametrize(("path", "name", "value", "problem"), [
    ("/data/core/ups/segment/jobs", "start", "99999999999999999999", "must be at most 9223372036854775807"),
    ("/data/core/ups/segment/jobs", "limit", "99999999999999999999", "must be at most 1000"),
    ("/data/core/ups/segment/jobs", "start", "-99999999999999999999", "must be at least 0"),
    ("/data/core/ups/segment/jobs", "start", "²", "must be an integer, not '²'"),
    ("/data/core/ups/segment/definitions", "page", "9223372036854775807", "must be at most"),
    ("/data/foundation/catalog/dataSets", "start", "٣", "must be an integer"),
    ("/data/core/ups/config/schedules", "start", "1_0", "must be an integer"),
    ("/data/core/ups/export/jobs", "offset", "²", "'offset' must be a number"),
    ("/data/core/ups/export/jobs", "offset", "99999999999999999999", "'offset' must be a number"),
])
def test_paging_numbers_are_400_naming_the_parameter(strict_client: TestClient, org: Org, path: str, name: str,
                                                      value: str, problem: str) -> None:
    response = strict_client.get(path, headers=org.headers(), params={name: value})
    body = assert_aep_error(response, 400, detail_contains=problem)
    assert body["report"]["field"] == name


@pytest.mark.parametrize(("name", "value"), [("startTime", "²"), ("endTime", "99999999999999999999"),
                                             ("startTime", "-9999999999999999")])
def test_event_time_bounds_are_400(strict_client: TestClient, org: Org, name: str, value: str) -> None:
    response = strict_client.get("/data/core/ups/access/entities", headers=org.headers(), params={
        "schema.name": "_xdm.context.experienceevent", "relatedEntityId": "a@b.c", "relatedEntityIdNS": "email",
        name: value})
    assert response.status_code in (400, 404), response.text
    if response.status_code == 400:
        assert assert_aep_error(response, 400)["report"]["field"] == name


def test_a_time_before_year_one_in_utc_is_400(strict_client: TestClient, org: Org) -> None:
    segment = strict_client.post("/data/core/ups/segment/definitions", headers=org.headers(), json={
        "name": "all", "expression": {"type": "PQL", "format": "pql/text", "value": "true"}}).json()["id"]
    response = strict_client.get(f"/data/core/ups/segment/definitions/{segment}/members", headers=org.headers(),
                                 params={"at": "0001-01-01T00:00:00+01:00"})
    body = assert_aep_error(response, 400, detail_contains="RFC 3339")
    assert body["report"]["field"] == "at"


def _loading_batch(client: TestClient, org: Org) -> tuple[str, str]:
    from tests.api.flows import create_dataset
    dataset = create_dataset(client, org.headers())
    batch = client.post("/data/foundation/import/batches", headers=org.headers(),
                        json={"datasetId": dataset, "inputFormat": {"format": "json"}}).json()["id"]
    return str(batch), dataset


@pytest.mark.parametrize(("name", "problem"), [
    ("people%00.json", "NUL character"),
    ("a" * 250 + ".json", "at most 249 bytes"),
    ("é" * 125, "250 bytes long"),
])
def test_upload_file_names_with_nul_or_too_long_are_400(strict_client: TestClient, org: Org, name: str,
                                                        problem: str) -> None:
    batch, dataset = _loading_batch(strict_client, org)
    response = strict_client.put(f"/data/foundation/import/batches/{batch}/datasets/{dataset}/files/{name}",
                                 headers={**org.headers(), "Content-Type": "application/octet-stream"}, content=b"{}")
    body = assert_aep_error(response, 400, detail_contains=problem)
    assert body["report"]["field"] in ("file_name", "fileName")


def test_the_longest_file_name_is_taken(strict_client: TestClient, org: Org) -> None:
    batch, dataset = _loading_batch(strict_client, org)
    response = strict_client.put(f"/data/foundation/import/batches/{batch}/datasets/{dataset}/files/{'a' * 249}",
                                 headers={**org.headers(), "Content-Type": "application/octet-stream"}, content=b"{}")
    assert response.status_code == 200, response.text


def test_a_nul_in_any_path_or_query_parameter_is_400(app: FastAPI, strict_client: TestClient, org: Org) -> None:
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/data/") or "{" not in path:
            continue
        sample = re.sub(r"\{[^}]+\}", "x%00", path)
        for method in operations:
            response = strict_client.request(method.upper(), sample, headers=org.headers())
            if method == "head":  # no body on a HEAD answer: the status is what there is to check
                assert response.status_code == 400, sample
                continue
            body = assert_aep_error(response, 400, detail_contains="NUL character")
            assert body["report"]["field"] in re.findall(r"\{([^}]+)\}", path)
    response = strict_client.get("/data/foundation/catalog/dataSets", headers=org.headers(), params={"name": "a\x00"})
    assert assert_aep_error(response, 400, detail_contains="NUL")["report"]["field"] == "name"


@pytest.mark.parametrize(("sql", "problem"), [
    ("SELECT 1 /* never closed", "'sql' does not parse"),
    ("SELECT 'never closed", "'sql' does not parse"),
    ('SELECT "never closed', "'sql' does not parse"),
    ("SELECT " + "(" * 5000 + "1" + ")" * 5000, "'sql' is nested too deeply"),
])
def test_query_service_sql_that_cannot_be_read_is_400(strict_client: TestClient, org: Org, sql: str,
                                                       problem: str) -> None:
    response = strict_client.post("/data/foundation/query/queries", headers=org.headers(), json={"sql": sql})
    body = assert_aep_error(response, 400, detail_contains=problem)
    assert body["report"]["field"] == "sql"
