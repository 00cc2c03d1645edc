"""Helpers of the streaming tests: a streaming connection and AEP's message envelope."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from pyarrow import fs as pafs

from openseg import lake_files
from openseg.lake_files import Lake
from tests.conftest import Org

CONNECTIONS = "/data/foundation/flowservice/connections"
SPEC = {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}
EVENT_SCHEMA = "https://ns.adobe.com/xdm/context/experienceevent"


def connection_body(dataset_id: str, *, authenticated: bool | None = None, name: str = "ACME Streaming",
                    data_type: str = "xdm") -> dict[str, Any]:
    params: dict[str, Any] = {"sourceId": name, "dataType": data_type, "name": name, "datasetId": dataset_id}
    if authenticated is not None:
        params["authenticationRequired"] = authenticated
    return {"name": name, "providerId": "521eee4d-8cbe-4906-bb48-fb6bd4450033",
            "description": "ACME streaming connection for customer data", "connectionSpec": SPEC,
            "auth": {"specName": "Streaming Connection", "params": params}}


def create_inlet(client: TestClient, org: Org, dataset_id: str, *, authenticated: bool | None = None,
                 sandbox: str = "prod") -> dict[str, Any]:
    """Create a streaming connection and return its ``GET`` item."""
    created = client.post(CONNECTIONS, headers=org.headers(sandbox),
                          json=connection_body(dataset_id, authenticated=authenticated))
    assert created.status_code == 201, created.text
    found = client.get(f"{CONNECTIONS}/{created.json()['id']}", headers=org.headers(sandbox))
    assert found.status_code == 200, found.text
    (item,) = found.json()["items"]
    return dict(item)


def envelope(record: dict[str, Any], *, dataset_id: str | None = None, org_id: str | None = None,
             schema: str = EVENT_SCHEMA) -> dict[str, Any]:
    """AEP's streaming message around one XDM record."""
    ref = {"id": schema, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    header: dict[str, Any] = {"schemaRef": ref, "source": {"name": "tests"}}
    if dataset_id is not None:
        header["datasetId"] = dataset_id
    if org_id is not None:
        header["imsOrgId"] = org_id
    return {"header": header, "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": record}}


def click(i: int, profile: int = 0, **extra: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "_id": f"click-{i}", "timestamp": "2026-12-01T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"email": [{"id": f"p{profile}@example.com", "primary": True}]},
    }
    record.update(extra)
    return record


def batches(client: TestClient, org: Org, dataset_id: str, status: str | None = None) -> list[dict[str, Any]]:
    """The dataset's batches (Catalog API), oldest first."""
    params = {"dataSet": dataset_id, "limit": "100", **({"status": status} if status else {})}
    response = client.get("/data/foundation/catalog/batches", headers=org.headers(), params=params)
    assert response.status_code == 200, response.text
    return list(response.json().values())


def lake_records(client: TestClient, org: Org, lake: Path | Lake, dataset_id: str) -> list[dict[str, Any]]:
    """Every record of the dataset's successful batches, read from their Parquet files in the lake (a local
    directory, or ``settings.data_lake`` wherever it is)."""
    data_lake = lake if isinstance(lake, Lake) else Lake(str(lake))
    records: list[dict[str, Any]] = []
    for batch in batches(client, org, dataset_id, "success"):
        filesystem, folder = lake_files.resolve(data_lake.location(batch["sandboxId"], dataset_id, batch["id"]))
        found = filesystem.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
        for path in sorted(f.path for f in found if f.base_name.startswith("part-") and f.base_name.endswith(".parquet")):
            records += pq.read_table(path, filesystem=filesystem).to_pylist()
    return records
