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
}


def json_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every operation that reads a JSON body, from the app's own route table (a new route is covered)."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            if method.upper() in ("POST", "PUT", "PATCH") and (method.upper(), path) not in NOT_JSON:
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
