"""Every field of every JSON body, given a value of the wrong type, answers a 4xx naming a field (issue 19)."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, PROFILE, UNION, create_dataset
from tests.api.test_bad_input import json_routes
from tests.api.test_definitions import define
from tests.conftest import Org

#: What a client might send instead of the value a field expects.
WRONG_VALUES: tuple[Any, ...] = ([], {"a": 1}, "x", -1, 2**62, True, None, "²")


def valid_bodies(client: TestClient, org: Org) -> dict[tuple[str, str], Any]:
    """A valid body for every JSON route, with path parameters filled with real ids."""
    headers = org.headers()
    people = create_dataset(client, headers, "people")
    union = create_dataset(client, headers, "export", schema=UNION, profile_enabled=False)
    segment = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    policy = {"name": "by dataset", "identityGraph": {"type": "none"},
              "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": [people]}},
              "schema": {"name": "_xdm.context.profile"}, "default": False, "isActiveOnEdge": False}
    policy_id = client.post("/data/core/ups/config/mergePolicies", headers=headers, json=policy).json()["id"]
    schedule = {"name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
                "schedule": "0 0 1 * * ?", "state": "inactive"}
    schedule_id = client.post("/data/core/ups/config/schedules", headers=headers, json=schedule).json()["id"]
    query_id = client.post("/data/foundation/query/queries", headers=headers, json={"sql": "SELECT 1 AS one"}).json()["id"]
    definition = {"name": "FR", "description": "people in France", "schema": {"name": "_xdm.context.profile"},
                  "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'},
                  "mergePolicyId": policy_id, "ttlInDays": 30, "labels": ["C1"], "lifecycleState": "published",
                  "payloadSchema": "string",
                  "evaluationInfo": {"batch": {"enabled": True}, "continuous": {"enabled": False}}}
    export = {"fields": "identityMap,homeAddress.country", "mergePolicy": {"id": policy_id, "version": 1},
              "filter": {"segments": [{"segmentId": segment, "segmentNs": "UPS", "status": ["realized"]}],
                         "segmentQualificationTime": {"startTime": "2024-01-01T00:00:00Z",
                                                      "endTime": "2025-01-01T00:00:00Z"},
                         "fromIngestTimestamp": "2024-01-01T00:00:00Z", "emptyProfiles": False},
              "additionalFields": {"eventList": {"fields": "environment.browserDetails",
                                                 "filter": {"fromIngestTimestamp": "2024-01-01T00:00:00Z"}}},
              "destination": {"datasetId": union, "segmentPerBatch": False},
              "schema": {"name": "_xdm.context.profile"}}
    record = {"status": "success", "relatedObjects": [{"type": "dataSet", "id": people}], "recordCount": 1,
              "tags": {"team": ["crm"]}, "externalId": "ext-1"}
    created = client.post("/data/foundation/catalog/batches", headers=headers, json=record)
    assert created.status_code == 201, created.text
    record_id = created.json()[0].removeprefix("@/batches/")
    events = create_dataset(client, headers, "events", schema=EVENT)
    edge_policy = client.post("/data/core/ups/config/mergePolicies", headers=headers,
                              json={**policy, "name": "on edge", "isActiveOnEdge": True}).json()["id"]
    edge_event = {"xdm": {"identityMap": {"email": [{"id": "ann@example.com", "primary": True}]},
                          "eventType": "web.webpagedetails.pageViews", "timestamp": "2026-12-01T10:00:00Z"},
                  "data": {"prop1": "custom value"}}
    return {
        ("PUT", f"/data/foundation/catalog/dataSets/{people}"): {
            "name": "replaced", "description": "d", "tags": {"unifiedProfile": ["enabled:true"]},
            "fileDescription": {"format": "parquet"}},
        ("POST", "/data/foundation/catalog/batches"): record,
        ("PUT", f"/data/foundation/catalog/batches/{record_id}"): record,
        ("PATCH", f"/data/foundation/catalog/batches/{record_id}"): {"status": "failed", "failedRecordCount": 1},
        ("POST", f"/data/foundation/catalog/batches/{uuid.uuid4().hex}"): record,
        ("PATCH", f"/data/foundation/catalog/v2/dataSets/{people}"): {
            "description": "d", "tags": {"adobe/pqs/table": ["people"]},
            "extensions": {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P3Y"}}},
            "classification": {"dataBehavior": "record", "managedBy": "CUSTOMER"}},
        ("POST", "/data/foundation/sandbox-management/sandboxes"): {"name": "dev-1", "title": "Dev", "type": "development"},
        ("POST", "/data/foundation/catalog/dataSets"): {
            "name": "more", "description": "d", "schemaRef": {"id": PROFILE, "contentType": "application/json"},
            "tags": {"unifiedProfile": ["enabled:true"]}, "fileDescription": {"format": "parquet"}},
        ("PATCH", f"/data/foundation/catalog/dataSets/{people}"): {
            "name": "renamed", "description": "d", "tags": {"unifiedProfile": ["enabled:true"]},
            "fileDescription": {"format": "parquet"}},
        ("POST", "/data/foundation/import/batches"): {"datasetId": people, "inputFormat": {"format": "json"}},
        ("POST", "/data/core/ups/config/mergePolicies"): {**policy, "name": "another"},
        ("PUT", f"/data/core/ups/config/mergePolicies/{policy_id}"): policy,
        ("PATCH", f"/data/core/ups/config/mergePolicies/{policy_id}"): [
            {"op": "replace", "path": "/attributeMerge", "value": policy["attributeMerge"]}],
        ("POST", "/data/core/ups/segment/definitions"): definition,
        ("POST", "/data/core/ups/segment/definitions/bulk-get"): {"ids": [{"id": segment}]},
        ("POST", f"/data/core/ups/segment/definitions/{segment}/dryRun"): {
            "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'}},
        ("PATCH", f"/data/core/ups/segment/definitions/{segment}"): {**definition, "name": "US again"},
        ("POST", "/data/core/ups/segment/jobs"): [{"segmentId": segment}],
        ("POST", "/data/core/ups/segment/conversion"): {
            "name": "converted", "schema": {"name": "_xdm.context.profile"}, "ttlInDays": 60,
            "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}},
        ("POST", "/data/core/ups/config/schedules"): {**schedule, "name": "another"},
        ("PATCH", f"/data/core/ups/config/schedules/{schedule_id}"): [
            {"op": "replace", "path": "/properties", "value": {"segments": [segment]}}],
        ("POST", f"/data/core/ups/config/schedules/{schedule_id}"): [
            {"op": "add", "path": "/schedule", "value": "0 15 10 * * ?"}],
        ("POST", "/data/core/ups/export/jobs"): export,
        ("POST", "/data/foundation/query/queries"): {"sql": "SELECT 1 AS one", "name": "q", "description": "d"},
        ("PATCH", f"/data/foundation/query/queries/{query_id}"): {"op": "cancel"},
        ("POST", "/data/core/ups/preview"): {"predicateExpression": 'homeAddress.country = "US"',
                                            "predicateType": "pql/text", "predicateModel": "_xdm.context.profile",
                                            "graphType": "simple", "mergePolicyId": policy_id},
        ("POST", "/data/core/ups/access/entities"): {
            "schema": {"name": "_xdm.context.profile"}, "fields": ["person.name"], "mergePolicyId": policy_id,
            "identities": [{"entityId": "ann@example.com", "entityIdNS": {"code": "email"}}]},
        ("POST", "/data/core/ups/segment/jobs/bulk-get"): {"ids": [{"id": "no-such-job"}]},
        ("POST", "/data/core/ups/config/mergePolicies/bulk-get"): {"ids": [{"id": policy_id}]},
        ("POST", "/data/foundation/flowservice/connections"): {
            "name": "web", "description": "d", "providerId": "521eee4d-8cbe-4906-bb48-fb6bd4450033",
            "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
            "auth": {"specName": "Streaming Connection", "params": {
                "sourceId": "web", "dataType": "xdm", "name": "web", "authenticationRequired": False,
                "datasetId": people}}},
        ("POST", "/data/core/edge/datastreams"): {"name": "web", "description": "d", "datasetId": events,
                                                  "mergePolicyId": edge_policy},
        ("POST", "/ee/v2/interact"): {"event": edge_event},
        ("POST", "/ee/v2/collect"): {"events": [edge_event]},
    }


def mutations(body: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(field, body) for every field of ``body`` replaced, in turn, by every wrong value."""
    children = body.items() if isinstance(body, dict) else enumerate(body) if isinstance(body, list) else ()
    for key, value in children:
        field = f"{path}[{key}]" if isinstance(key, int) else f"{path}.{key}" if path else key
        for wrong in WRONG_VALUES:
            if wrong != value or type(wrong) is not type(value):
                mutated = copy.deepcopy(body)
                mutated[key] = wrong
                yield field, mutated
        for inner, mutated_value in mutations(value, field):
            mutated = copy.deepcopy(body)
            mutated[key] = mutated_value
            yield inner, mutated


def with_fresh_names(body: Any, counter: int) -> Any:
    """Names that must be unique get a suffix, so a mutated body reaches validation rather than a 409."""
    if isinstance(body, dict) and isinstance(body.get("name"), str) and body["name"]:
        return {**body, "name": f"{body['name']}-{counter}"}
    return body


def test_valid_bodies_cover_every_json_route(app: FastAPI, client: TestClient, org: Org) -> None:
    routes = {(method, re.sub(r"/[0-9a-f-]{20,}", "/x1", path)) for method, path in valid_bodies(client, org)}
    assert routes == set(json_routes(app))


def test_every_field_of_the_wrong_type_is_a_4xx_naming_a_field(app: FastAPI, org: Org) -> None:
    client = TestClient(app, raise_server_exceptions=False)
    failures = []
    counter = 0
    for (method, path), body in valid_bodies(client, org).items():
        for field, mutated in mutations(body):
            counter += 1
            response = client.request(method, path, headers=org.headers(), json=with_fresh_names(mutated, counter))
            if response.status_code >= 500:
                failures.append(f"{method} {path} {field}: {response.status_code} {response.text[:200]}")
            elif response.status_code >= 400:
                assert_aep_error(response, response.status_code)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/data/core/ups/segment/definitions",
     {"name": "x", "schema": "_xdm.context.profile",
      "expression": {"type": "PQL", "format": "pql/text", "value": "true"}}, "schema"),
    ("/data/core/ups/segment/definitions",
     {"name": "x", "labels": 5, "expression": {"type": "PQL", "format": "pql/text", "value": "true"}}, "labels"),
    ("/data/core/ups/config/mergePolicies",
     {"name": "x", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "dataSetPrecedence", "data": "a"}},
     "attributeMerge.data"),
    ("/data/core/ups/access/entities",
     {"schema": ["_xdm.context.profile"], "identities": [{"entityId": "a", "entityIdNS": {"code": "email"}}]}, "schema"),
    ("/data/core/ups/access/entities",
     {"mergePolicyId": ["a", "b"], "identities": [{"entityId": "a", "entityIdNS": {"code": "email"}}]},
     "mergePolicyId"),
    ("/data/foundation/catalog/dataSets", {"name": "x", "description": ["a"], "schemaRef": {"id": PROFILE}},
     "description"),
    ("/data/foundation/query/queries", {"sql": "SELECT 1", "name": ["a", "b"]}, "name"),
])
def test_the_probes_wrong_types_are_400_naming_the_field(client: TestClient, org: Org, path: str,
                                                         body: dict[str, Any], field: str) -> None:
    response = client.post(path, headers=org.headers(), json=body)
    found = assert_aep_error(response, 400, detail_contains=f"'{field}'")
    assert found["report"]["field"] == field


def test_an_export_event_filter_that_is_not_an_object_is_400(client: TestClient, org: Org) -> None:
    union = create_dataset(client, org.headers(), "export", schema=UNION, profile_enabled=False)
    response = client.post("/data/core/ups/export/jobs", headers=org.headers(), json={
        "schema": {"name": "_xdm.context.profile"}, "destination": {"datasetId": union},
        "additionalFields": {"eventList": {"fields": "eventType", "filter": "yesterday"}}})
    found = assert_aep_error(response, 400, detail_contains="'additionalFields.eventList.filter' must be an object")
    assert found["report"]["field"] == "additionalFields.eventList.filter"


@pytest.mark.parametrize("pql", ["loyalty.points > ²", "homeAddress.country = \"US\" and loyalty.points > ٣"])
def test_non_ascii_digits_in_pql_are_a_positioned_400(client: TestClient, org: Org, pql: str) -> None:
    response = client.post("/data/core/ups/segment/definitions", headers=org.headers(), json={
        "name": "digits", "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
    found = assert_aep_error(response, 400, detail_contains="unexpected character")
    assert found["report"]["field"] == "expression.value" and found["report"]["col"] == len(pql)


@pytest.mark.parametrize(("body", "field"), [
    ({"ttlInDays": 2**62}, "ttlInDays"),
    ({"lifecycleState": "x" * 17}, "lifecycleState"),
    ({"lifecycleState": {"a": 1}}, "lifecycleState"),
])
def test_values_beyond_the_store_columns_are_400(client: TestClient, org: Org, body: dict[str, Any],
                                                 field: str) -> None:
    """PostgreSQL refuses them with a DataError (SQLite stored them): both must answer the same 400."""
    response = client.post("/data/core/ups/segment/definitions", headers=org.headers(), json={
        "name": "x", "expression": {"type": "PQL", "format": "pql/text", "value": "true"}, **body})
    assert assert_aep_error(response, 400, detail_contains=f"'{field}'")["report"]["field"] == field
