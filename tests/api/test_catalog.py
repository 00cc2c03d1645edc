"""Catalog datasets and batches in AEP's shapes."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, PROFILE, create_dataset
from tests.conftest import Org


def test_create_get_dataset_shape(client: TestClient, org: Org) -> None:
    headers = org.headers()
    response = client.post("/data/foundation/catalog/dataSets", headers=headers, json={
        "name": "Loyalty Members", "description": "CRM export",
        "schemaRef": {"id": PROFILE, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "tags": {"unifiedProfile": ["enabled:true"]},
        "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"},
        "aspect": "production",
    })
    assert response.status_code == 201
    (ref,) = response.json()
    assert ref.startswith("@/dataSets/")
    dataset_id = ref.removeprefix("@/dataSets/")
    assert len(dataset_id) == 24
    body = client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=headers).json()
    assert list(body) == [dataset_id]
    dataset = body[dataset_id]
    assert dataset["name"] == "Loyalty Members"
    assert dataset["description"] == "CRM export"
    assert dataset["schemaRef"]["id"] == PROFILE
    assert dataset["tags"] == {"unifiedProfile": ["enabled:true"]}
    assert dataset["classification"] == {"dataBehavior": "record"}
    assert dataset["fileDescription"]["format"] == "parquet"
    assert dataset["imsOrg"] == org.org_id
    assert dataset["aspect"] == "production"
    assert isinstance(dataset["created"], int) and dataset["created"] == dataset["updated"]


def test_event_dataset_is_time_series(client: TestClient, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT)
    dataset = client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=org.headers()).json()[dataset_id]
    assert dataset["classification"] == {"dataBehavior": "time-series"}


def test_list_paging_and_properties(client: TestClient, org: Org) -> None:
    headers = org.headers()
    ids = [create_dataset(client, headers, f"ds{i}") for i in range(3)]
    everything = client.get("/data/foundation/catalog/dataSets", headers=headers).json()
    assert list(everything) == ids
    page = client.get("/data/foundation/catalog/dataSets?limit=2&start=1", headers=headers).json()
    assert list(page) == ids[1:3]
    newest = client.get("/data/foundation/catalog/dataSets?orderBy=desc:created&limit=1", headers=headers).json()
    assert list(newest) == [ids[2]]
    names = client.get("/data/foundation/catalog/dataSets?properties=name", headers=headers).json()
    assert names == {ids[0]: {"name": "ds0"}, ids[1]: {"name": "ds1"}, ids[2]: {"name": "ds2"}}
    assert_aep_error(client.get("/data/foundation/catalog/dataSets?limit=500", headers=headers), 400,
                     detail_contains="'limit' must be at most 100")


def test_patch_and_delete_dataset(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    patched = client.patch(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=headers,
                           json={"name": "renamed", "tags": {"unifiedProfile": ["enabled:false"]}})
    assert patched.status_code == 200
    assert patched.json() == [f"@/dataSets/{dataset_id}"]
    dataset = client.get(f"/data/foundation/catalog/dataSets/{dataset_id}/", headers=headers).json()[dataset_id]
    assert dataset["name"] == "renamed"
    assert dataset["tags"] == {"unifiedProfile": ["enabled:false"]}
    deleted = client.delete(f"/data/foundation/catalog/dataSets/{dataset_id}",
                            headers={**headers, "Content-Type": "application/json"})
    assert deleted.status_code == 200
    assert_aep_error(client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=headers), 404,
                     detail_contains=f"dataset '{dataset_id}' was not found")


def test_bad_dataset_bodies_name_the_field(client: TestClient, org: Org) -> None:
    headers = org.headers()
    assert_aep_error(client.post("/data/foundation/catalog/dataSets", headers=headers, json={"schemaRef": {"id": PROFILE}}),
                     400, detail_contains="'name'")
    assert_aep_error(client.post("/data/foundation/catalog/dataSets", headers=headers, json={"name": "x"}),
                     400, detail_contains="'schemaRef.id'")
    assert_aep_error(client.post("/data/foundation/catalog/dataSets", headers=headers, json=[1]),
                     400, detail_contains="JSON object")


def test_responses_are_json_whatever_accept_says(client: TestClient, org: Org) -> None:
    headers = {**org.headers(), "Accept": "application/vnd.adobe.xdm+json", "Content-Type": "application/json"}
    response = client.get("/data/foundation/catalog/dataSets/", headers=headers)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
