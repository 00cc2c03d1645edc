"""Data Access operations as Adobe's data-access.yaml gives them: HEAD of a file, a failed batch's failed
records (listed and downloadable) and a batch's meta files."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, get_batch, json_lines, person, upload_batch
from tests.api.test_catalog_ops import assert_spec_response
from tests.conftest import Org

EXPORT = "/data/foundation/export"
SPEC = "data-access.yaml"


def test_head_of_a_file_gives_the_headers_of_its_get(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": json_lines([person(i) for i in range(20)])})
    drain()
    files = client.get(f"{EXPORT}/batches/{batch_id}/files", headers=headers).json()
    assert_spec_response(SPEC, "/batches/{batchId}/files", "get", 200, files)
    file_id = files["data"][0]["dataSetFileId"]
    content = client.get(f"{EXPORT}/files/{file_id}?path=part-00000.parquet", headers=headers).content
    assert (files["data"][0]["records"], files["data"][0]["size"]) == ("20", str(len(content)))

    head = client.head(f"{EXPORT}/files/{file_id}?path=part-00000.parquet", headers=headers)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["accept-ranges"] == "bytes"
    assert head.headers["content-length"] == str(len(content))
    assert head.headers["content-type"] == "application/octet-stream"

    listing = client.get(f"{EXPORT}/files/{file_id}", headers=headers)
    listing_head = client.head(f"{EXPORT}/files/{file_id}", headers=headers)
    assert listing_head.status_code == 200 and listing_head.content == b""
    assert listing_head.headers["content-type"] == "application/json"
    assert listing_head.headers["content-length"] == str(len(listing.content))

    assert client.head(f"{EXPORT}/files/{file_id}?path=other.parquet", headers=headers).status_code == 404
    assert client.head(f"{EXPORT}/files/nope", headers=headers).status_code == 404


def test_a_failed_batch_gives_back_its_failed_records(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    bad_two, bad_four = person(2), person(4)
    bad_two["identityMap"] = {"email": [{"id": ""}]}
    del bad_four["identityMap"]
    people = [person(1), bad_two, person(3), bad_four]
    good = [person(5)]
    batch_id = upload_batch(client, headers, dataset_id,
                            {"people.json": json_lines(people), "more.json": json_lines(good)})
    drain()
    batch = get_batch(client, headers, batch_id)
    assert (batch["status"], batch["recordCount"], batch["failedRecordCount"]) == ("failed", 5, 2)
    assert batch["failedBatchLocation"] == f"/data/foundation/export/batches/{batch_id}/failed"
    assert [e["rows"] for e in batch["errors"]] == [["2"], ["4"]]

    listing = client.get(f"{EXPORT}/batches/{batch_id}/failed", headers=headers)
    assert listing.status_code == 200
    assert_spec_response(SPEC, "/batches/{batchId}/failed", "get", 200, listing.json())
    (entry,) = listing.json()["data"]
    assert entry["name"] == "people.json"
    assert entry["_links"]["self"]["href"].endswith(f"/data/foundation/export/batches/{batch_id}/failed?path=people.json")
    assert listing.json()["_page"] == {"limit": 100, "count": 1}

    download = client.get(f"{EXPORT}/batches/{batch_id}/failed?path=people.json", headers=headers)
    assert download.status_code == 200
    assert [json.loads(line) for line in download.text.splitlines()] == [bad_two, bad_four]
    assert entry["length"] == str(len(download.content))
    assert_aep_error(client.get(f"{EXPORT}/batches/{batch_id}/failed?path=more.json", headers=headers), 404,
                     detail_contains=f"failed batch '{batch_id}' has no file 'more.json'")
    assert_aep_error(client.get(f"{EXPORT}/batches/{batch_id}/failed?path=../people.json", headers=headers), 404)

    ok = upload_batch(client, headers, dataset_id, {"ok.json": json_lines(good)})
    drain()
    assert client.get(f"{EXPORT}/batches/{ok}/failed", headers=headers).json() == {
        "data": [], "_page": {"limit": 100, "count": 0}}
    assert_aep_error(client.get(f"{EXPORT}/batches/{'f' * 32}/failed", headers=headers), 404)

    # Deleting the batch drops what it kept.
    assert client.delete(f"/data/foundation/catalog/batches/{batch_id}", headers=headers).status_code == 200
    assert_aep_error(client.get(f"{EXPORT}/batches/{batch_id}/failed", headers=headers), 404)


def test_failed_parquet_rows_and_whole_files(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    identity = pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])))
    table = pa.table({
        "identityMap": pa.array([[("email", [{"id": "a@x.com", "primary": True}])], [], [("email", [])]], identity),
        "_acme": pa.array([{"n": 1}, {"n": 2}, {"n": 3}]),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink)
    batch_id = upload_batch(client, headers, dataset_id, {"rows.parquet": sink.getvalue(), "junk.parquet": b"nope"},
                            fmt="parquet")
    drain()
    batch = get_batch(client, headers, batch_id)
    assert (batch["status"], batch["failedRecordCount"]) == ("failed", 2)
    names = [e["name"] for e in client.get(f"{EXPORT}/batches/{batch_id}/failed", headers=headers).json()["data"]]
    assert names == ["junk.parquet", "rows.parquet"]
    junk = client.get(f"{EXPORT}/batches/{batch_id}/failed?path=junk.parquet", headers=headers)
    assert junk.content == b"nope"
    rows = client.get(f"{EXPORT}/batches/{batch_id}/failed?path=rows.parquet", headers=headers)
    failed = pq.read_table(io.BytesIO(rows.content))
    assert failed.column_names == table.column_names
    assert failed.column("_acme").to_pylist() == [{"n": 2}, {"n": 3}]


def test_batch_meta_files(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    bad = person(1)
    del bad["identityMap"]
    content = json_lines([bad, person(2)])
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": content})
    drain()
    listing = client.get(f"{EXPORT}/batches/{batch_id}/meta", headers=headers)
    assert listing.status_code == 200
    assert_spec_response(SPEC, "/batches/{batchId}/meta", "get", 200, listing.json())
    assert [e["name"] for e in listing.json()["data"]] == ["input_files", "row_errors_sample.json"]
    assert listing.json()["data"][1]["_links"]["self"]["href"].endswith(
        f"/export/batches/{batch_id}/meta?path=row_errors_sample.json")

    inputs = client.get(f"{EXPORT}/batches/{batch_id}/meta?path=input_files", headers=headers)
    assert inputs.json() == [{"name": "people.json", "sizeInBytes": len(content)}]
    sample = client.get(f"{EXPORT}/batches/{batch_id}/meta?path=row_errors_sample.json", headers=headers)
    assert sample.json() == get_batch(client, headers, batch_id)["errors"]
    assert listing.json()["data"][1]["length"] == str(len(sample.content))
    assert_aep_error(client.get(f"{EXPORT}/batches/{batch_id}/meta?path=row_errors", headers=headers), 404,
                     detail_contains="has no meta file 'row_errors'; it has: input_files, row_errors_sample.json")

    ok = upload_batch(client, headers, dataset_id, {"ok.json": json_lines([person(3)])})
    drain()
    assert [e["name"] for e in client.get(f"{EXPORT}/batches/{ok}/meta", headers=headers).json()["data"]] == \
        ["input_files"]
