"""Typed requests (issue #19): every body is validated by its model, which /openapi.json describes, with
sizes bounded; a body or parameter that does not validate is AEP's 400 naming the field, never FastAPI's 422."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.conftest import Org

DEFINITIONS = "/data/core/ups/segment/definitions"
EXPRESSION = {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}


def _schema(app: FastAPI, method: str, path: str) -> dict[str, Any]:
    """The request body schema /openapi.json gives the operation, its ``$ref`` resolved."""
    document = app.openapi()
    body = document["paths"][path][method]["requestBody"]
    assert body["required"] is True
    ref = body["content"]["application/json"]["schema"]["$ref"]
    return document["components"]["schemas"][ref.rsplit("/", 1)[1]]  # type: ignore[no-any-return]


def test_a_definition_body_is_described_with_its_bounds(app: FastAPI) -> None:
    schema = _schema(app, "post", DEFINITIONS)
    assert schema["required"] == ["name", "expression"]
    assert schema["properties"]["name"] == {"maxLength": 512, "title": "Name", "type": "string"}
    assert schema["additionalProperties"] is True  # AEP's other fields are taken
    assert "400" in app.openapi()["paths"][DEFINITIONS]["post"]["responses"]
    expression = app.openapi()["components"]["schemas"]["Expression"]
    assert expression["properties"]["format"]["anyOf"][0] == {"enum": ["pql/text", "pql/json"], "type": "string"}


def test_query_parameters_are_declared_with_their_bounds(app: FastAPI) -> None:
    parameters = {p["name"]: p for p in app.openapi()["paths"][DEFINITIONS]["get"]["parameters"]}
    assert parameters["limit"]["schema"] | {"maximum": 1000, "minimum": 1, "type": "integer"} == parameters["limit"]["schema"]
    responses = app.openapi()["paths"][DEFINITIONS]["get"]["responses"]
    assert "422" not in responses
    assert responses["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/AEPError"}


@pytest.mark.parametrize(("path", "body", "field", "problem"), [
    (DEFINITIONS, {"name": "x" * 513, "expression": EXPRESSION}, "name", "is 513 characters long; at most 512"),
    (DEFINITIONS, {"name": "x", "description": "d" * 10_001, "expression": EXPRESSION}, "description",
     "at most 10000"),
    (DEFINITIONS, {"name": "x", "expression": {**EXPRESSION, "value": "a" * 100_001}}, "expression.value",
     "at most 100000"),
    (DEFINITIONS, {"name": "x", "expression": EXPRESSION, "labels": ["l"] * 1001}, "labels",
     "holds 1001 items; at most 1000"),
    (DEFINITIONS, {"name": "x", "expression": EXPRESSION, "mergePolicyId": "p" * 257}, "mergePolicyId",
     "at most 256"),
    (DEFINITIONS, {"expression": EXPRESSION}, "name", "'name' is required"),
    (DEFINITIONS, {"name": "x", "expression": {**EXPRESSION, "format": "pql/xml"}}, "expression.format",
     "must be one of pql/text, pql/json"),
    ("/data/core/ups/segment/jobs", [{"segmentId": "s"}] * 1001, "body", "holds 1001 items"),
    ("/data/core/ups/segment/jobs", [{"segmentId": 5}], "[0].segmentId", "must be a string, not a number"),
    ("/data/core/ups/preview", {"predicateExpression": True}, "predicateExpression",
     "must be a string, not a boolean"),
    (f"{DEFINITIONS}/bulk-get", {"ids": [{"id": "i"}] * 1001}, "ids", "holds 1001 items"),
    ("/data/core/ups/config/mergePolicies", {"name": "n" * 513, "identityGraph": {"type": "none"},
                                             "attributeMerge": {"type": "timestampOrdered"}}, "name", "at most 512"),
    ("/data/core/ups/config/mergePolicies", {"name": "n", "identityGraph": {"type": "none"},
                                             "attributeMerge": {"type": "timestampOrdered"}, "default": "yes"},
     "default", "must be true or false, not a string"),
    ("/data/core/ups/config/schedules", {"name": "n", "type": "batch_segmentation", "properties": ["*"],
                                         "schedule": "0 0 1 * * ?"}, "properties", "must be an object, not an array"),
    ("/data/core/ups/export/jobs", {"schema": {"name": "_xdm.context.profile"}, "destination": {"datasetId": "d"},
                                    "fields": "f," * 5001}, "fields", "at most 10000"),
    ("/data/foundation/query/queries", {"sql": "SELECT 1 " + " " * 1_000_000}, "sql", "at most 1000000"),
    ("/data/foundation/query/queries", {"sql": "SELECT 1", "description": "d" * 10_001}, "description",
     "at most 10000"),
    ("/data/core/ups/access/entities", {"identities": [{"entityId": "a", "entityIdNS": {"code": "email"}}] * 101},
     "identities", "holds 101 items; at most 100"),
    ("/data/core/ups/access/entities", {"identities": [{"entityId": "a", "entityIdNS": {"code": "e" * 257}}]},
     "identities[0].entityIdNS.code", "at most 256"),
    ("/data/foundation/catalog/dataSets", {"name": "x", "tags": {"k" * 257: ["v"]}}, "tags",
     "a key of 'tags' is 257 characters long; at most 256 are allowed"),
    ("/data/foundation/catalog/batches", {"status": "success", "recordCount": "5"}, "recordCount",
     "must be an integer, not a string"),
    ("/data/foundation/import/batches", {"datasetId": "d" * 257}, "datasetId", "at most 256"),
    ("/data/foundation/sandbox-management/sandboxes", {"name": "s" * 65}, "name", "at most 64"),
    ("/data/foundation/flowservice/connections", {"name": "n", "connectionSpec": {"id": "x"}, "auth": {"params": 1}},
     "auth.params", "must be an object, not a number"),
])
def test_bodies_beyond_their_bounds_or_of_the_wrong_type_are_400_naming_the_field(
        client: TestClient, org: Org, path: str, body: Any, field: str, problem: str) -> None:
    response = client.post(path, headers=org.headers(), json=body)
    found = assert_aep_error(response, 400, detail_contains=problem)
    assert found["report"]["field"] == field
    assert found["report"]["errors"][0]["field"] == field


@pytest.mark.parametrize(("path", "params", "problem"), [
    (DEFINITIONS, {"limit": "1001"}, "query parameter 'limit' must be at most 1000"),
    (DEFINITIONS, {"limit": "ten"}, "query parameter 'limit' must be an integer, not 'ten'"),
    (f"{DEFINITIONS}/x1/members", {"at": "2" * 65}, "query parameter 'at' is 65 characters long"),
    ("/data/core/ups/segment/jobs", {"status": "s" * 1025}, "query parameter 'status' is 1025 characters long"),
    ("/data/core/ups/config/mergePolicies", {"default": "maybe"}, "query parameter 'default' must be true or false"),
    ("/data/foundation/query/queries", {"excludeSoftDeleted": "yes"},
     "query parameter 'excludeSoftDeleted' must be true or false, not 'yes'"),
    ("/data/foundation/catalog/dataSets", {"limit": "101"}, "query parameter 'limit' must be at most 100"),
    ("/data/foundation/catalog/batches", {"orderBy": "o" * 1025}, "query parameter 'orderBy' is 1025 characters"),
    ("/data/core/ups/access/entities", {"schema.name": "s" * 257}, "query parameter 'schema.name' is 257 characters"),
    ("/data/core/ups/export/jobs", {"limit": "0"}, "query parameter 'limit' must be at least 1"),
])
def test_declared_parameters_are_400_naming_them(client: TestClient, org: Org, path: str, params: dict[str, str],
                                                 problem: str) -> None:
    response = client.get(path, headers=org.headers(), params=params)
    found = assert_aep_error(response, 400, detail_contains=problem)
    assert found["report"]["field"] == next(iter(params))


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("PUT", "/data/core/ups/config/mergePolicies/x1", {"name": 5}, "name"),
    ("PATCH", "/data/core/ups/config/mergePolicies/x1", {"op": "add"}, "body"),
    ("PATCH", f"{DEFINITIONS}/x1", {"ttlInDays": "30"}, "ttlInDays"),
    ("PATCH", "/data/foundation/catalog/dataSets/x1", "rename", "body"),
    ("PATCH", "/data/foundation/catalog/v2/dataSets/x1", {"classification": []}, "classification"),
    ("PATCH", "/data/foundation/query/queries/x1", {"op": "stop"}, "op"),
])
def test_a_body_is_validated_before_its_resource_is_looked_up(client: TestClient, org: Org, method: str, path: str,
                                                               body: Any, field: str) -> None:
    response = client.request(method, path, headers=org.headers(), json=body)
    assert assert_aep_error(response, 400)["report"]["field"] == field


def test_an_empty_paging_parameter_is_its_default(client: TestClient, org: Org) -> None:
    response = client.get(DEFINITIONS, headers=org.headers(), params={"limit": "", "start": ""})
    assert response.status_code == 200, response.text
    assert response.json()["page"]["pageOffset"] == 0


def test_authentication_comes_before_the_body(client: TestClient) -> None:
    """A body is read once the caller is known: no credentials is a 401 whatever the body."""
    response = client.post(DEFINITIONS, content=b"\xff\xfe not json")
    assert response.status_code == 401


def test_a_body_read_as_any_json_object_is_still_described() -> None:
    """A route without a model of its own yet (``deps.json_object``) describes its body as a JSON object."""
    from fastapi import Depends

    from openseg.api.deps import json_object
    from openseg.api.openapi import describe_bodies

    bare = FastAPI()

    @bare.post("/things")
    def things(body: dict[str, Any] = Depends(json_object)) -> dict[str, Any]:
        return body

    document = bare.openapi()
    describe_bodies(bare, document)
    body = document["paths"]["/things"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["type"] == "object"
