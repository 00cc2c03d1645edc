"""The seed's and README's HTTP steps as small helpers shared by API tests."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient

PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENT = "https://ns.adobe.com/xdm/context/experienceevent"
UNION = "https://ns.adobe.com/xdm/context/profile__union"


def create_dataset(client: TestClient, headers: dict[str, str], name: str = "people", schema: str = PROFILE,
                   profile_enabled: bool = True) -> str:
    body: dict[str, Any] = {
        "name": name,
        "schemaRef": {"id": schema, "contentType": "application/vnd.adobe.xed+json;version=1"},
    }
    if profile_enabled:
        body["tags"] = {"unifiedProfile": ["enabled:true"]}
    response = client.post("/data/foundation/catalog/dataSets", headers=headers, json=body)
    assert response.status_code == 201, response.text
    (ref,) = response.json()
    return str(ref.split("/")[-1])


def upload_batch(client: TestClient, headers: dict[str, str], dataset_id: str, files: dict[str, bytes],
                 fmt: str = "json", complete: bool = True) -> str:
    response = client.post("/data/foundation/import/batches", headers=headers,
                           json={"datasetId": dataset_id, "inputFormat": {"format": fmt}})
    assert response.status_code == 201, response.text
    batch_id = str(response.json()["id"])
    for name, content in files.items():
        put = client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{name}",
                         headers={**headers, "Content-Type": "application/octet-stream"}, content=content)
        assert put.status_code == 200, put.text
    if complete:
        done = client.post(f"/data/foundation/import/batches/{batch_id}?action=COMPLETE", headers=headers)
        assert done.status_code == 200, done.text
    return batch_id


def json_lines(records: list[dict[str, Any]]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode()


def get_batch(client: TestClient, headers: dict[str, str], batch_id: str) -> dict[str, Any]:
    response = client.get(f"/data/foundation/catalog/batches/{batch_id}", headers=headers)
    assert response.status_code == 200, response.text
    return dict(response.json()[batch_id])


def person(i: int, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "identityMap": {"email": [{"id": f"p{i}@example.com", "primary": True}]},
        "person": {"name": {"firstName": f"First{i}", "lastName": f"Last{i}"}},
        "homeAddress": {"country": "US" if i % 2 else "FR", "city": f"City{i % 7}"},
        "loyalty": {"points": i * 10},
    }
    record.update(extra)
    return record


def event(i: int, profile: int, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "_id": f"e{i}",
        "timestamp": f"2026-11-{1 + i % 28:02d}T10:00:00Z",
        "eventType": "commerce.purchases" if i % 3 == 0 else "web.webpagedetails.pageViews",
        "identityMap": {"email": [{"id": f"p{profile}@example.com"}]},
        "commerce": {"order": {"priceTotal": 10.5 + i}},
    }
    record.update(extra)
    return record
