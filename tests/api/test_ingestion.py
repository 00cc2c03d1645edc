"""Batch ingestion: validation per record, all-or-nothing batches, Parquet in the lake, Data Access."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, create_dataset, event, get_batch, json_lines, person, upload_batch
from tests.conftest import Org


def _dataset_files(services: Services, dataset_id: str) -> list[Path]:
    return sorted(services.settings.lake.glob(f"*/{dataset_id}/**/*.parquet"))


def test_batch_with_one_bad_record_fails_whole(client: TestClient, services: Services, org: Org,
                                               drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    bad = person(2)
    bad["identityMap"] = {"email": [{"id": ""}]}
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": json_lines([person(1), bad, person(3)])})
    assert get_batch(client, headers, batch_id)["status"] == "processing"
    drain()
    batch = get_batch(client, headers, batch_id)
    assert batch["status"] == "failed"
    assert batch["metrics"]["recordsRead"] == 3
    assert batch["metrics"]["recordsWritten"] == 0
    assert batch["errors"] == [{
        "code": "ING-1104-400",
        "description": "record 2 of people.json: field 'identityMap.email[0].id' must be a non-empty string",
        "file": "people.json", "record": 2, "field": "identityMap.email[0].id",
        "reason": "must be a non-empty string", "rows": ["2"],
    }]
    assert _dataset_files(services, dataset_id) == []
    files = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=headers).json()
    assert files["data"] == []
    dataset = client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=headers).json()[dataset_id]
    assert (dataset["lastBatchId"], dataset["lastBatchStatus"]) == (batch_id, "failed")


def test_good_batch_reads_back_through_data_access(client: TestClient, services: Services, org: Org,
                                                   drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    records = [person(i) for i in range(1000)]
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": json_lines(records)})
    drain()
    batch = get_batch(client, headers, batch_id)
    assert batch["status"] == "success"
    assert batch["metrics"] == {"recordsRead": 1000, "recordsWritten": 1000, "failedRecordCount": 0}
    assert batch["relatedObjects"] == [{"type": "dataSet", "id": dataset_id}]

    listing = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=headers).json()
    assert len(listing["data"]) == 1 and listing["_page"]["count"] == 1
    file_id = listing["data"][0]["dataSetFileId"]
    assert listing["data"][0]["_links"]["self"]["href"].endswith(f"/data/foundation/export/files/{file_id}")
    detail = client.get(f"/data/foundation/export/files/{file_id}", headers=headers).json()
    (entry,) = detail["data"]
    assert entry["name"] == "part-00000.parquet"
    assert entry["_links"]["self"]["href"].endswith(f"/export/files/{file_id}?path=part-00000.parquet")

    content = client.get(f"/data/foundation/export/files/{file_id}?path=part-00000.parquet", headers=headers)
    assert content.status_code == 200
    (lake_file,) = _dataset_files(services, dataset_id)
    assert lake_file.parent.name == batch_id
    assert content.content == lake_file.read_bytes()
    assert int(entry["length"]) == len(content.content)
    table = pq.read_table(io.BytesIO(content.content))
    assert table.num_rows == 1000
    rows = table.to_pylist()
    assert rows[7]["person"] == {"name": {"firstName": "First7", "lastName": "Last7"}}
    assert rows[7]["homeAddress"] == {"country": "US", "city": "City0"}
    assert rows[7]["identityMap"] == [("email", [{"id": "p7@example.com", "primary": True}])]

    ranged = client.get(f"/data/foundation/export/files/{file_id}?path=part-00000.parquet",
                        headers={**headers, "Range": "bytes=0-3"})
    assert ranged.status_code == 206
    assert ranged.content == b"PAR1"


def test_parquet_upload_is_kept_byte_for_byte(client: TestClient, services: Services, org: Org,
                                              drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers, "events", EVENT)
    table = pa.Table.from_pylist([
        {"_id": f"e{i}", "eventType": "web.webpagedetails.pageViews",
         "timestamp": pa.scalar(1_700_000_000_000_000 + i, pa.timestamp("us", tz="UTC")).as_py(),
         "identityMap": [("ECID", [{"id": f"ecid{i}", "primary": True}])]}
        for i in range(50)
    ], schema=pa.schema([("_id", pa.string()), ("eventType", pa.string()),
                         ("timestamp", pa.timestamp("us", tz="UTC")),
                         ("identityMap", pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()),
                                                                                   ("primary", pa.bool_())]))))]))
    sink = io.BytesIO()
    pq.write_table(table, sink)
    batch_id = upload_batch(client, headers, dataset_id, {"events.parquet": sink.getvalue()}, fmt="parquet")
    drain()
    assert get_batch(client, headers, batch_id)["status"] == "success"
    (lake_file,) = _dataset_files(services, dataset_id)
    assert lake_file.read_bytes() == sink.getvalue()


def test_events_are_validated(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers, "events", EVENT)
    good = event(1, 1)
    no_id = {k: v for k, v in event(2, 1).items() if k != "_id"}
    bad_time = event(3, 1, timestamp="2026-11-01 10:00")
    batch_id = upload_batch(client, headers, dataset_id,
                            {"events.json": json.dumps([good, no_id, bad_time]).encode()})
    drain()
    batch = get_batch(client, headers, batch_id)
    assert batch["status"] == "failed"
    assert [(e["record"], e["field"]) for e in batch["errors"]] == [(2, "_id"), (3, "timestamp")]
    assert "RFC 3339" in batch["errors"][1]["reason"]


def test_json_array_and_lines_across_files(client: TestClient, services: Services, org: Org,
                                           drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers, "events", EVENT)
    batch_id = upload_batch(client, headers, dataset_id, {
        "a.json": json.dumps([event(i, i) for i in range(5)], indent=2).encode(),
        "b.json": json_lines([event(i, i) for i in range(5, 9)]),
    })
    drain()
    assert get_batch(client, headers, batch_id)["metrics"]["recordsWritten"] == 9
    table = pq.read_table(_dataset_files(services, dataset_id)[0].parent)
    assert table.num_rows == 9
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")


def test_batch_lifecycle_errors(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    other_dataset = create_dataset(client, headers, "other")
    batch_id = upload_batch(client, headers, dataset_id, {}, complete=False)
    assert_aep_error(client.post(f"/data/foundation/import/batches/{batch_id}?action=COMPLETE", headers=headers),
                     400, detail_contains="has no files")
    wrong = client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{other_dataset}/files/x.json",
                       headers=headers, content=b"{}")
    assert_aep_error(wrong, 400, detail_contains=f"belongs to dataset '{dataset_id}'")
    client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/x.json", headers=headers,
               content=json_lines([person(1)]))
    assert client.post(f"/data/foundation/import/batches/{batch_id}?action=COMPLETE", headers=headers).status_code == 200
    again = client.post(f"/data/foundation/import/batches/{batch_id}?action=COMPLETE", headers=headers)
    assert_aep_error(again, 400, detail_contains="already processing")
    late = client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/y.json",
                      headers=headers, content=b"{}")
    assert_aep_error(late, 400, detail_contains="only be uploaded while it is loading")
    drain()
    assert_aep_error(client.post(f"/data/foundation/import/batches/{batch_id}?action=COMPLETE", headers=headers),
                     400, detail_contains="already success")
    assert_aep_error(client.post(f"/data/foundation/import/batches/{batch_id}?action=EXPLODE", headers=headers),
                     400, detail_contains="COMPLETE or ABORT")


def test_abort_discards_uploads(client: TestClient, services: Services, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = upload_batch(client, headers, dataset_id, {"x.json": json_lines([person(1)])}, complete=False)
    response = client.post(f"/data/foundation/import/batches/{batch_id}?action=ABORT", headers=headers)
    # The batch object, as AEP's completeBatch answers (it was {"id", "status"} alone).
    assert (response.json()["id"], response.json()["status"]) == (batch_id, "aborted")
    assert response.json() == get_batch(client, headers, batch_id)
    assert not (services.settings.staging / batch_id).exists()


def test_batches_list_by_dataset(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    first = create_dataset(client, headers)
    second = create_dataset(client, headers, "second")
    b1 = upload_batch(client, headers, first, {"x.json": json_lines([person(1)])})
    upload_batch(client, headers, second, {"x.json": json_lines([person(2)])})
    drain()
    listed = client.get(f"/data/foundation/catalog/batches?dataSet={first}", headers=headers).json()
    assert list(listed) == [b1]
    assert listed[b1]["status"] == "success"


def test_unknown_or_invalid_file_content(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = upload_batch(client, headers, dataset_id, {"x.json": b'{"identityMap": {"email": [{"id": "a"}]}}\n{oops'})
    drain()
    batch = get_batch(client, headers, batch_id)
    assert batch["status"] == "failed"
    assert batch["errors"][0]["description"] == "file x.json: line 2 is not valid JSON: Expecting property name enclosed in double quotes (column 2)"


def test_parquet_with_text_timestamps_is_checked_and_typed(client: TestClient, services: Services, org: Org,
                                                            drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers, "events", EVENT)

    def parquet(stamps: list[str]) -> bytes:
        table = pa.Table.from_pylist([
            {"_id": f"e{i}", "eventType": "web.webpagedetails.pageViews", "timestamp": stamp,
             "identityMap": [("ECID", [{"id": f"ecid{i}", "primary": True}])]}
            for i, stamp in enumerate(stamps)
        ], schema=pa.schema([("_id", pa.string()), ("eventType", pa.string()), ("timestamp", pa.string()),
                             ("identityMap", pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()),
                                                                                       ("primary", pa.bool_())]))))]))
        sink = io.BytesIO()
        pq.write_table(table, sink, row_group_size=2)
        return sink.getvalue()

    bad = upload_batch(client, headers, dataset_id, {"e.parquet": parquet(
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00+02:00", "2026-01-03", "2026-01-04T00:00:00Z"])},
        fmt="parquet")
    drain()
    failed = get_batch(client, headers, bad)
    assert failed["status"] == "failed"
    assert [(e["record"], e["field"]) for e in failed["errors"]] == [(3, "timestamp")]
    good = upload_batch(client, headers, dataset_id, {"e.parquet": parquet(
        ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00+02:00"])}, fmt="parquet")
    drain()
    assert get_batch(client, headers, good)["status"] == "success"
    (lake_file,) = _dataset_files(services, dataset_id)
    table = pq.read_table(lake_file)
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert [t.isoformat() for t in table["timestamp"].to_pylist()] == ["2026-01-01T00:00:00+00:00",
                                                                        "2026-01-01T22:00:00+00:00"]


def test_fields_of_later_records_are_kept(client: TestClient, services: Services, org: Org,
                                          drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    records = [person(1), {"identityMap": {"email": [{"id": "x@y"}]}, "loyalty": {"tier": "gold"},
                           "person": {"gender": "female"}}]
    upload_batch(client, headers, dataset_id, {"p.json": json_lines(records)})
    drain()
    (lake_file,) = _dataset_files(services, dataset_id)
    rows = pq.read_table(lake_file).to_pylist()
    assert rows[1]["loyalty"]["tier"] == "gold" and rows[1]["person"]["gender"] == "female"
    assert rows[0]["person"]["name"]["firstName"] == "First1"
