"""Data Access ``GET /export/datasets/{id}/preview``: a dataset's first 100 records, as ingested."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_catalog_ops import assert_spec_response
from tests.conftest import Org, make_org

PREVIEW = "/data/foundation/export/datasets/{}/preview"


def test_a_dataset_previews_its_first_records_oldest_batch_first(client: TestClient, org: Org,
                                                                 drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    empty = client.get(PREVIEW.format(dataset_id), headers=headers)
    assert (empty.status_code, empty.json()) == (200, {"data": []})

    upload_batch(client, headers, dataset_id, {"first.json": json_lines([person(i) for i in range(3)])})
    drain()
    upload_batch(client, headers, dataset_id, {"second.json": json_lines([person(i) for i in range(3, 150)])})
    drain()
    upload_batch(client, headers, dataset_id, {"open.json": json_lines([person(999)])}, complete=False)

    response = client.get(PREVIEW.format(dataset_id), headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert_spec_response("data-access.yaml", "/datasets/{id}/preview", "get", 200, body)
    assert len(body["data"]) == 100
    assert body["data"][0] == person(0)
    assert [r["identityMap"]["email"][0]["id"] for r in body["data"]] == [f"p{i}@example.com" for i in range(100)]


def test_an_unknown_or_another_orgs_dataset_is_404(client: TestClient, org: Org, services: Services) -> None:
    dataset_id = create_dataset(client, org.headers())
    assert_aep_error(client.get(PREVIEW.format("5c8c3c555033b814b69f947f"), headers=org.headers()), 404)
    other = make_org(services)
    assert_aep_error(client.get(PREVIEW.format(dataset_id), headers=other.headers()), 404)
