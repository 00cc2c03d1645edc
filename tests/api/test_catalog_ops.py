"""Catalog operations as Adobe's catalog.yaml gives them: PUT and JSON-Patch PATCH of datasets, the credentials
404, Catalog-created batches (POST, PUT, PATCH, DELETE), unique values, and the batch object's counters."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.aep import assert_aep_error
from tests.api.flows import PROFILE, create_dataset, get_batch, json_lines, person, upload_batch
from tests.conftest import Org, make_org

CATALOG = "/data/foundation/catalog"
SPECS = Path(__file__).resolve().parents[2].parent / "shared" / "aep-openapi"


@functools.cache
def _spec(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((SPECS / name).read_text()))


def assert_spec_response(spec: str, path: str, method: str, status: int, body: Any) -> None:
    """``body`` validates against the response schema ``spec`` gives ``method path`` for ``status``."""
    document = _spec(spec)
    responses = document["paths"][path][method]["responses"]
    schema = (responses.get(status) or responses[str(status)])["content"]["application/json"]["schema"]
    jsonschema.validate(body, {**schema, "components": document["components"]})


def _batch_record(client: TestClient, headers: dict[str, str], body: dict[str, Any]) -> str:
    response = client.post(f"{CATALOG}/batches", headers=headers, json=body)
    assert response.status_code == 201, response.text
    (ref,) = response.json()
    assert ref.startswith("@/batches/")
    batch_id = ref.removeprefix("@/batches/")
    assert response.headers["location"] == f"{CATALOG}/batches/{batch_id}"
    return str(batch_id)


def test_put_dataset_replaces_it(client: TestClient, org: Org) -> None:
    headers = org.headers()
    response = client.post(f"{CATALOG}/dataSets", headers=headers, json={
        "name": "crm", "description": "CRM export", "schemaRef": {"id": PROFILE},
        "tags": {"unifiedProfile": ["enabled:true"]}, "enableErrorDiagnostics": True,
    })
    dataset_id = response.json()[0].removeprefix("@/dataSets/")
    put = client.put(f"{CATALOG}/dataSets/{dataset_id}", headers=headers,
                     json={"name": "crm v2", "tags": {"adobe/pqs/table": ["crm"]}})
    assert put.status_code == 200
    assert put.json() == [f"@/dataSets/{dataset_id}"]
    assert_spec_response("catalog.yaml", "/dataSets/{DATASET_ID}", "put", 200, put.json())
    dataset = client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert dataset["name"] == "crm v2"
    assert dataset["tags"] == {"adobe/pqs/table": ["crm"]}
    assert "description" not in dataset and "enableErrorDiagnostics" not in dataset
    assert dataset["schemaRef"] == {"id": PROFILE}
    assert dataset["updated"] >= dataset["created"]

    # What GET answered goes back unchanged (its read-only fields are not written).
    again = client.put(f"{CATALOG}/dataSets/{dataset_id}", headers=headers, json=dataset)
    assert again.status_code == 200
    assert client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]["name"] == "crm v2"

    assert_aep_error(client.put(f"{CATALOG}/dataSets/{dataset_id}", headers=headers,
                                json={"name": "x", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/other"}}),
                     400, detail_contains="'schemaRef' of a dataset cannot change")
    assert_aep_error(client.put(f"{CATALOG}/dataSets/{dataset_id}", headers=headers, json={"tags": {}}),
                     400, detail_contains="'name' is required")
    assert_aep_error(client.put(f"{CATALOG}/dataSets/{'0' * 24}", headers=headers, json={"name": "x"}),
                     404, detail_contains=f"dataset '{'0' * 24}' was not found")


def test_patch_dataset_takes_the_specs_json_patch(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers, profile_enabled=False)
    example = [
        {"op": "add", "path": "/tags/unifiedProfile", "value": ["enabled:true", "isUpsert:true"]},
        {"op": "add", "path": "/tags/unifiedIdentity", "value": ["enabled:true"]},
    ]
    patched = client.patch(f"{CATALOG}/dataSets/{dataset_id}", json=example,
                           headers={**headers, "Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200, patched.text
    assert patched.json() == [f"@/dataSets/{dataset_id}"]
    dataset = client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert dataset["tags"] == {"unifiedProfile": ["enabled:true", "isUpsert:true"], "unifiedIdentity": ["enabled:true"]}

    removed = client.patch(f"{CATALOG}/dataSets/{dataset_id}", headers=headers,
                           json=[{"op": "remove", "path": "/tags/unifiedIdentity"},
                                 {"op": "replace", "path": "/name", "value": "patched"}])
    assert removed.status_code == 200
    dataset = client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert (dataset["name"], dataset["tags"]) == ("patched", {"unifiedProfile": ["enabled:true", "isUpsert:true"]})

    assert_aep_error(client.patch(f"{CATALOG}/dataSets/{dataset_id}", headers=headers,
                                  json=[{"op": "replace", "path": "/schemaRef/id", "value": "x"}]),
                     400, detail_contains="'/schemaRef/id' cannot be changed")
    assert_aep_error(client.patch(f"{CATALOG}/dataSets/{dataset_id}", headers=headers,
                                  json=[{"op": "remove", "path": "/name"}]),
                     400, detail_contains="'name' must be a non-empty string")
    assert_aep_error(client.patch(f"{CATALOG}/dataSets/{dataset_id}", headers=headers, json="name"),
                     400, detail_contains="JSON Patch array")


def test_dataset_credentials_are_a_clear_404(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    body = assert_aep_error(client.get(f"{CATALOG}/dataSets/{dataset_id}/credentials", headers=headers), 404,
                            detail_contains=f"openseg gives no storage credentials for dataset '{dataset_id}'")
    assert "/data/foundation/export/batches/{batchId}/files" in body["detail"]


def test_catalog_batch_record_post_get_patch_put_delete(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = _batch_record(client, headers, {
        "status": "success", "externalId": "/acme/ingest/42",
        "relatedObjects": [{"type": "dataSet", "id": dataset_id}, {"type": "batch", "id": "upstream"}],
        "recordCount": 45, "failedRecordCount": 2, "size": 512, "started": 1494349963122,
        "completed": 1494349963467, "errors": [{"code": "err-1494349963436", "rows": ["3-5"],
                                                "description": "bad rows"}],
        "metrics": {"foo": 1337}, "tags": {"foo_bar": ["stuff"]}, "availableDates": {"startDate": 1337, "endDate": 4000},
        "inputFormat": {"format": "parquet"},
    })
    answer = client.get(f"{CATALOG}/batches/{batch_id}", headers=headers).json()
    assert_spec_response("catalog.yaml", "/batches/{BATCH_ID}", "get", 200, answer)
    batch = answer[batch_id]
    assert {k: v for k, v in batch.items() if k not in ("created", "updated")} == {
        "id": batch_id, "imsOrg": org.org_id, "sandboxId": batch["sandboxId"], "status": "success",
        "externalId": "/acme/ingest/42", "availableDates": {"startDate": 1337, "endDate": 4000},
        "relatedObjects": [{"type": "dataSet", "id": dataset_id}, {"type": "batch", "id": "upstream"}],
        "inputFormat": {"format": "parquet"}, "metrics": {"foo": 1337}, "recordCount": 45, "failedRecordCount": 2,
        "size": 512, "errors": [{"code": "err-1494349963436", "rows": ["3-5"], "description": "bad rows"}],
        "tags": {"foo_bar": ["stuff"]}, "createdUser": "openseg", "version": "1.0.0",
        "started": 1494349963122, "completed": 1494349963467,
    }
    listed = client.get(f"{CATALOG}/batches?dataSet={dataset_id}", headers=headers).json()
    assert listed == {batch_id: batch}

    patched = client.patch(f"{CATALOG}/batches/{batch_id}", headers=headers,
                           json={"status": "failed", "failedRecordCount": 3})
    assert patched.status_code == 200
    assert patched.json() == [f"@/batches/{batch_id}"]
    assert_spec_response("catalog.yaml", "/batches/{BATCH_ID}", "patch", 200, patched.json())
    after = get_batch(client, headers, batch_id)
    assert (after["status"], after["failedRecordCount"], after["recordCount"], after["tags"]) == \
        ("failed", 3, 45, {"foo_bar": ["stuff"]})

    put = client.put(f"{CATALOG}/batches/{batch_id}", headers=headers, json={"status": "success", "recordCount": 7})
    assert put.status_code == 200
    assert put.json() == [f"@/batches/{batch_id}"]
    replaced = get_batch(client, headers, batch_id)
    assert (replaced["status"], replaced["recordCount"], replaced["failedRecordCount"], replaced["size"]) == \
        ("success", 7, 0, 0)
    assert (replaced["tags"], replaced["errors"], replaced["metrics"]) == ({}, [], {})
    assert "externalId" not in replaced and "started" not in replaced
    assert replaced["relatedObjects"][0] == {"type": "dataSet", "id": dataset_id}

    # A Catalog record is not a batch to ingest into.
    upload = client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/a.json",
                        headers={**headers, "Content-Type": "application/octet-stream"}, content=b"{}")
    assert_aep_error(upload, 400, detail_contains="was created by catalog, not by the batch ingestion API")

    deleted = client.delete(f"{CATALOG}/batches/{batch_id}", headers=headers)
    assert deleted.status_code == 200
    assert deleted.json() == [f"@/batches/{batch_id}"]
    assert_aep_error(client.get(f"{CATALOG}/batches/{batch_id}", headers=headers), 404,
                     detail_contains=f"batch '{batch_id}' was not found")
    assert_aep_error(client.delete(f"{CATALOG}/batches/{batch_id}", headers=headers), 404)


def test_catalog_batch_bodies_name_the_bad_field(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    related = [{"type": "dataSet", "id": dataset_id}]
    cases = [
        ({"relatedObjects": related}, "'status' is required"),
        ({"status": "done", "relatedObjects": related}, "'status' must be one of processing, success"),
        ({"status": "success"}, "'relatedObjects' must name exactly one"),
        ({"status": "success", "relatedObjects": [{"type": "dataSet", "id": "0" * 24}]},
         f"dataset '{'0' * 24}' does not exist"),
        ({"status": "success", "relatedObjects": related, "recordCount": -1}, "'recordCount' must be a non-negative"),
        ({"status": "success", "relatedObjects": related, "errors": [{"rows": [3]}]}, "'errors[0].rows' must be a list"),
        ({"status": "success", "relatedObjects": related, "colour": "blue"}, "'colour' is not a field of a Catalog"),
        ({"status": "success", "relatedObjects": related, "inputFormat": {"format": "xml"}}, "'inputFormat' must be"),
    ]
    for body, detail in cases:
        assert_aep_error(client.post(f"{CATALOG}/batches", headers=headers, json=body), 400, detail_contains=detail)
    assert client.get(f"{CATALOG}/batches", headers=headers).json() == {}


def test_an_ingested_batch_shows_its_counters_and_keeps_its_lifecycle(client: TestClient, org: Org,
                                                                       drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    content = json_lines([person(1), person(2)])
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": content})
    drain()
    answer = client.get(f"{CATALOG}/batches/{batch_id}", headers=headers).json()
    assert_spec_response("catalog.yaml", "/batches/{BATCH_ID}", "get", 200, answer)
    batch = answer[batch_id]
    assert (batch["status"], batch["recordCount"], batch["failedRecordCount"], batch["size"]) == \
        ("success", 2, 0, len(content))
    assert batch["created"] <= batch["started"] <= batch["completed"]
    assert batch["tags"] == {} and "failedBatchLocation" not in batch

    patched = client.patch(f"{CATALOG}/batches/{batch_id}", headers=headers,
                           json={"tags": {"team": ["crm"]}, "externalId": "ext-1"})
    assert patched.status_code == 200
    batch = get_batch(client, headers, batch_id)
    assert (batch["tags"], batch["externalId"], batch["status"]) == ({"team": ["crm"]}, "ext-1", "success")

    assert_aep_error(client.patch(f"{CATALOG}/batches/{batch_id}", headers=headers, json={"status": "failed"}),
                     400, detail_contains="'status' of batch")
    assert_aep_error(client.put(f"{CATALOG}/batches/{batch_id}", headers=headers,
                                json={"status": "success", "recordCount": 5}),
                     400, detail_contains="'recordCount' of batch")
    # A PUT of the object read back changes nothing; one without the descriptive fields clears them.
    assert client.put(f"{CATALOG}/batches/{batch_id}", headers=headers, json=batch).status_code == 200
    assert get_batch(client, headers, batch_id) == {**batch, "updated": get_batch(client, headers, batch_id)["updated"]}
    assert client.put(f"{CATALOG}/batches/{batch_id}", headers=headers, json={"status": "success"}).status_code == 200
    cleared = get_batch(client, headers, batch_id)
    assert cleared["tags"] == {} and "externalId" not in cleared and cleared["recordCount"] == 2


def test_deleting_an_ingested_batch_removes_its_files(client: TestClient, services: Services, org: Org,
                                                      drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    first = upload_batch(client, headers, dataset_id, {"a.json": json_lines([person(1)])})
    drain()
    second = upload_batch(client, headers, dataset_id, {"b.json": json_lines([person(2)])})
    drain()
    assert len(list(services.settings.lake.glob(f"*/{dataset_id}/{second}/*.parquet"))) == 1
    pending = upload_batch(client, headers, dataset_id, {"c.json": json_lines([person(3)])})
    assert_aep_error(client.delete(f"{CATALOG}/batches/{pending}", headers=headers), 400,
                     detail_contains=f"batch '{pending}' is processing: delete it once it has ended")
    drain()

    assert client.delete(f"{CATALOG}/batches/{pending}", headers=headers).json() == [f"@/batches/{pending}"]
    assert client.delete(f"{CATALOG}/batches/{second}", headers=headers).status_code == 200
    assert list(services.settings.lake.glob(f"*/{dataset_id}/{second}")) == []
    assert_aep_error(client.get(f"/data/foundation/export/batches/{second}/files", headers=headers), 404)
    dataset = client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert (dataset["lastBatchId"], dataset["lastBatchStatus"]) == (first, "success")
    assert list(client.get(f"{CATALOG}/batches?dataSet={dataset_id}", headers=headers).json()) == [first]


def test_unique_batch_values(client: TestClient, services: Services, org: Org) -> None:
    headers = org.headers()
    one, two = create_dataset(client, headers, "one"), create_dataset(client, headers, "two")
    for dataset_id, status in ((one, "success"), (one, "failed"), (two, "success"), (two, "queued")):
        _batch_record(client, headers, {"status": status, "relatedObjects": [{"type": "dataSet", "id": dataset_id}]})
    statuses = client.get(f"{CATALOG}/batches/uniques/status", headers=headers)
    assert statuses.status_code == 200
    assert statuses.json() == ["failed", "queued", "success"]
    assert_spec_response("catalog.yaml", "/batches/uniques/{FIELD}", "get", 200, statuses.json())
    assert client.get(f"{CATALOG}/batches/uniques/status?dataSet={one}", headers=headers).json() == ["failed", "success"]
    assert client.get(f"{CATALOG}/batches/uniques/dataSet?status=success", headers=headers).json() == sorted([one, two])
    assert client.get(f"{CATALOG}/batches/uniques/status?limit=1", headers=headers).json() == ["failed"]
    assert_aep_error(client.get(f"{CATALOG}/batches/uniques/colour", headers=headers), 400,
                     detail_contains="not for 'colour'")
    # Another org's sandbox sees none of them.
    assert client.get(f"{CATALOG}/batches/uniques/status", headers=make_org(services).headers()).json() == []


def test_last_batches_per_dataset(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    people, quiet = create_dataset(client, headers, "people"), create_dataset(client, headers, "quiet")
    good = upload_batch(client, headers, people, {"a.json": json_lines([person(1)])})
    drain()
    bad = upload_batch(client, headers, people, {"b.json": json_lines([{"person": {}}])})
    drain()
    answer = client.get(f"{CATALOG}/lastBatches", headers=headers)
    assert answer.status_code == 200
    assert_spec_response("catalog.yaml", "/lastBatches", "get", 200, answer.json())
    batch = get_batch(client, headers, bad)
    assert answer.json() == {people: {
        "lastBatchId": bad, "lastBatchStatus": "failed", "lastSuccessfulBatchId": good, "lastFailedBatchId": bad,
        "imsOrg": org.org_id, "sandboxId": batch["sandboxId"], "created": batch["created"],
        "updated": batch["updated"]}}
    assert client.get(f"{CATALOG}/lastBatches?dataSetId={quiet}", headers=headers).json() == {}
    assert list(client.get(f"{CATALOG}/lastBatches?dataSetId={quiet},{people}&lastBatchStatus=failed",
                           headers=headers).json()) == [people]
    assert client.get(f"{CATALOG}/lastBatches?lastBatchStatus=success", headers=headers).json() == {}
    assert client.get(f"{CATALOG}/lastBatches?properties=lastBatchStatus", headers=headers).json() == \
        {people: {"lastBatchStatus": "failed"}}


def test_create_batch_with_its_id_and_patch_v2_dataset(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    chosen = f"acme_{uuid.uuid4().hex[:20]}"
    body = {"status": "success", "relatedObjects": [{"type": "dataSet", "id": dataset_id}]}
    created = client.post(f"{CATALOG}/batches/{chosen}", headers=headers, json=body)
    assert created.status_code == 201
    assert created.json() == [f"@/batches/{chosen}"]
    assert_spec_response("catalog.yaml", "/batches/{BATCH_ID}", "post", 201, created.json())
    assert get_batch(client, headers, chosen)["status"] == "success"
    assert_aep_error(client.post(f"{CATALOG}/batches/{chosen}", headers=headers, json=body), 400,
                     detail_contains=f"batch '{chosen}' already exists")
    assert_aep_error(client.post(f"{CATALOG}/batches/{'x' * 33}", headers=headers, json=body), 400,
                     detail_contains="must be 1 to 32 letters")

    example = {"description": "Updated dataset for Q2 sales analysis", "tags": {"adobe/pqs/table": ["q2_sales_data"]},
               "extensions": {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P3Y"}}},
               "classification": {"dataBehavior": "record", "managedBy": "CUSTOMER"}}
    patched = client.patch(f"{CATALOG}/v2/dataSets/{dataset_id}", headers=headers, json=example)
    assert patched.status_code == 200
    assert patched.json() == [f"@/dataSets/{dataset_id}"]
    assert_spec_response("catalog.yaml", "/v2/dataSets/{DATASET_ID}", "patch", 200, patched.json())
    dataset = client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert dataset["description"] == "Updated dataset for Q2 sales analysis"
    assert dataset["tags"] == {"unifiedProfile": ["enabled:true"], "adobe/pqs/table": ["q2_sales_data"]}
    assert dataset["extensions"] == {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P3Y"}}}
    assert dataset["classification"] == {"dataBehavior": "record", "managedBy": "CUSTOMER"}

    deeper = client.patch(f"{CATALOG}/v2/dataSets/{dataset_id}", headers=headers,
                          json={"extensions": {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P1Y"}, "x": 1}},
                                "description": None})
    assert deeper.status_code == 200
    dataset = client.get(f"{CATALOG}/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert dataset["extensions"] == {"adobe_lakeHouse": {"rowExpiration": {"ttlValue": "P1Y"}, "x": 1}}
    assert "description" not in dataset and dataset["name"] == "people"
    assert_aep_error(client.patch(f"{CATALOG}/v2/dataSets/{dataset_id}", headers=headers,
                                  json={"classification": {"dataBehavior": "time-series"}}),
                     400, detail_contains="'classification.dataBehavior' follows the dataset's schema")
    assert_aep_error(client.patch(f"{CATALOG}/v2/dataSets/{dataset_id}", headers=headers, json={"tags": {"a": "b"}}),
                     400, detail_contains="'tags' must be an object")
