"""Batch ingestion operations as Adobe's batch-ingestion.yaml gives them: COMPLETE and ABORT answer the batch
object, large-file upload (INITIALIZE, parts by Content-Range, status by HEAD, COMPLETE), and a batch's preview."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.store.models import Batch
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, get_batch, json_lines, person, upload_batch
from tests.api.test_catalog_ops import assert_spec_response
from tests.conftest import Org

IMPORT = "/data/foundation/import"
SPEC = "batch-ingestion.yaml"
FILE_PATH = "/batches/{batchId}/datasets/{datasetId}/files/{filePath}"


def _new_batch(client: TestClient, headers: dict[str, str], dataset_id: str) -> str:
    response = client.post(f"{IMPORT}/batches", headers=headers,
                           json={"datasetId": dataset_id, "inputFormat": {"format": "json"}})
    assert response.status_code == 201, response.text
    # Not validated against the spec's Batch schema: its status enum lacks "loading", which AEP's own batch
    # ingestion guide shows for a new batch (and openseg answers).
    assert response.json()["status"] == "loading"
    return str(response.json()["id"])


def _part(client: TestClient, headers: dict[str, str], url: str, content: bytes, first: int, total: int | str):
    last = first + len(content) - 1
    return client.patch(url, content=content, headers={**headers, "Content-Type": "application/octet-stream",
                                                       "Content-Range": f"bytes {first}-{last}/{total}"})


def test_complete_and_abort_answer_the_batch_object(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    content = json_lines([person(1), person(2)])
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": content}, complete=False)
    done = client.post(f"{IMPORT}/batches/{batch_id}?action=COMPLETE", headers=headers)
    assert done.status_code == 200
    body = done.json()
    assert_spec_response(SPEC, "/batches/{batchId}", "post", 200, body)
    assert {k: v for k, v in body.items() if k not in ("created", "updated")} == {
        "id": batch_id, "imsOrg": org.org_id, "sandboxId": body["sandboxId"], "status": "processing",
        "relatedObjects": [{"type": "dataSet", "id": dataset_id}], "inputFormat": {"format": "json"},
        "metrics": {"recordsRead": 0, "recordsWritten": 0, "failedRecordCount": 0}, "recordCount": 0,
        "failedRecordCount": 0, "size": len(content), "errors": [], "tags": {}, "createdUser": "openseg",
        "version": "1.0.0",
    }
    assert body == get_batch(client, headers, batch_id)

    other = upload_batch(client, headers, dataset_id, {"people.json": content}, complete=False)
    aborted = client.post(f"{IMPORT}/batches/{other}?action=ABORT", headers=headers)
    assert aborted.status_code == 200
    assert (aborted.json()["id"], aborted.json()["status"]) == (other, "aborted")
    assert aborted.json()["completed"] >= aborted.json()["created"]


def test_large_file_upload_in_parts(client: TestClient, services: Services, org: Org,
                                    drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = _new_batch(client, headers, dataset_id)
    content = json_lines([person(i) for i in range(300)])
    third = len(content) // 3
    chunks = [(0, content[:third]), (third, content[third:2 * third]), (2 * third, content[2 * third:])]
    url = f"{IMPORT}/batches/{batch_id}/datasets/{dataset_id}/files/people.json"

    started = client.post(f"{url}?action=INITIALIZE", headers=headers)
    assert started.status_code == 200
    assert started.json() == {"name": "people.json", "sizeInBytes": 0}
    assert_spec_response(SPEC, FILE_PATH, "post", 200, started.json())

    # The last part first, then the first: a hole in the middle.
    for first, chunk in (chunks[2], chunks[0]):
        sent = _part(client, headers, url, chunk, first, len(content))
        assert sent.status_code == 200, sent.text
        assert_spec_response(SPEC, FILE_PATH, "patch", 200, sent.json())
    assert sent.json() == {"name": "people.json", "sizeInBytes": third + len(content) - 2 * third}
    status = client.head(url, headers=headers)
    assert status.status_code == 200
    assert status.headers["range"] == f"bytes=0-{third - 1},{2 * third}-{len(content) - 1}"
    assert status.content == b""

    assert_aep_error(client.post(f"{url}?action=COMPLETE", headers=headers), 400,
                     detail_contains=f"large file 'people.json' is missing bytes {third}-{2 * third - 1} of "
                                     f"{len(content)}")
    assert_aep_error(client.post(f"{IMPORT}/batches/{batch_id}?action=COMPLETE", headers=headers), 400,
                     detail_contains="large files that were initialized but not completed: people.json")

    # A part whose body is shorter than its range leaves nothing behind.
    first, chunk = chunks[1]
    short = client.patch(url, content=chunk[:-1], headers={
        **headers, "Content-Range": f"bytes {first}-{first + len(chunk) - 1}/{len(content)}"})
    assert_aep_error(short, 400, detail_contains=f"its 'Content-Range' announces {len(chunk)}")
    assert client.head(url, headers=headers).headers["range"] == status.headers["range"]
    staged = services.settings.staging / batch_id / ".large" / "people.json"
    assert sorted(p.name for p in staged.iterdir()) == [
        f"{0:020d}-{third - 1:020d}.{len(content)}", f"{2 * third:020d}-{len(content) - 1:020d}.{len(content)}"]

    assert _part(client, headers, url, chunk, first, len(content)).status_code == 200
    assert client.head(url, headers=headers).headers["range"] == f"bytes=0-{len(content) - 1}"
    completed = client.post(f"{url}?action=COMPLETE", headers=headers)
    assert completed.status_code == 200
    assert completed.json() == {"name": "people.json", "sizeInBytes": len(content)}
    assert (services.settings.staging / batch_id / "people.json").read_bytes() == content
    assert not staged.exists()
    assert client.head(url, headers=headers).headers["range"] == f"bytes=0-{len(content) - 1}"

    done = client.post(f"{IMPORT}/batches/{batch_id}?action=COMPLETE", headers=headers)
    assert done.status_code == 200 and done.json()["size"] == len(content)
    drain()
    batch = get_batch(client, headers, batch_id)
    assert (batch["status"], batch["recordCount"]) == ("success", 300)


def test_large_file_parts_are_checked(client: TestClient, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = _new_batch(client, headers, dataset_id)
    url = f"{IMPORT}/batches/{batch_id}/datasets/{dataset_id}/files/big.json"
    assert_aep_error(_part(client, headers, url, b"0123456789", 0, 20), 404,
                     detail_contains="large file 'big.json' of batch")
    assert_aep_error(client.post(f"{url}?action=COMPLETE", headers=headers), 404, detail_contains="INITIALIZE first")
    assert client.head(url, headers=headers).status_code == 404
    assert client.post(f"{url}?action=INITIALIZE", headers=headers).status_code == 200
    assert_aep_error(client.post(f"{url}?action=COMPLETE", headers=headers), 400,
                     detail_contains="no part of large file 'big.json' was received")
    assert client.head(url, headers=headers).headers.get("range") is None

    cases = [
        ({}, "the 'Content-Range' header is required"),
        ({"Content-Range": "0-9/20"}, "is not 'bytes {first}-{last}/{total}'"),
        ({"Content-Range": "bytes 9-0/20"}, "the last byte comes before the first"),
        ({"Content-Range": "bytes 0-20/20"}, "byte 20 is past the end of a file of 20 bytes"),
        ({"Content-Range": "bytes 0-512000000/*"}, "a part holds at most 512000000 bytes"),
    ]
    for extra, detail in cases:
        assert_aep_error(client.patch(url, content=b"x", headers={**headers, **extra}), 400, detail_contains=detail)

    assert _part(client, headers, url, b"0123456789", 0, 20).status_code == 200
    assert_aep_error(_part(client, headers, url, b"56789abcde", 5, 20), 400,
                     detail_contains="bytes 5-14 overlap the part already received for bytes 0-9")
    assert_aep_error(_part(client, headers, url, b"abcdefghij", 10, 30), 400,
                     detail_contains="this part says the file has 30 bytes; an earlier part said 20")
    # The same range again replaces the part.
    assert _part(client, headers, url, b"ABCDEFGHIJ", 0, 20).status_code == 200
    assert _part(client, headers, url, b"klmnopqrst", 10, "*").status_code == 200
    assert client.post(f"{url}?action=COMPLETE", headers=headers).json() == {"name": "big.json", "sizeInBytes": 20}
    assert_aep_error(client.post(f"{url}?action=FINISH", headers=headers), 400,
                     detail_contains="'action' must be INITIALIZE or COMPLETE")

    # Re-initializing drops the parts sent before.
    assert client.post(f"{url}?action=INITIALIZE", headers=headers).status_code == 200
    assert _part(client, headers, url, b"0123", 0, "*").status_code == 200
    assert client.post(f"{url}?action=INITIALIZE", headers=headers).status_code == 200
    assert client.head(url, headers=headers).headers.get("range") is None


def test_batch_preview(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    records = [person(1), {"identityMap": {"email": [{"id": "x@example.com"}]}, "note": "plain"}, person(3)]
    batch_id = upload_batch(client, headers, dataset_id, {"people.json": json_lines(records)}, complete=False)
    url = f"{IMPORT}/batches/{batch_id}/datasets/{dataset_id}/preview"
    preview = client.get(f"{url}?format=json&nrow=2", headers=headers)
    assert preview.status_code == 200, preview.text
    assert_spec_response(SPEC, "/batches/{batchId}/datasets/{datasetId}/preview", "get", 200, preview.json())
    assert preview.json() == {
        "formatParams": {"format": "json", "charset": "UTF-8", "header": True},
        "preview": {
            "columns": [{"cid": "0", "name": "identityMap"}, {"cid": "1", "name": "person"},
                        {"cid": "2", "name": "homeAddress"}, {"cid": "3", "name": "loyalty"},
                        {"cid": "4", "name": "note"}],
            "rows": [
                {"0": '{"email": [{"id": "p1@example.com", "primary": true}]}',
                 "1": '{"name": {"firstName": "First1", "lastName": "Last1"}}',
                 "2": '{"country": "US", "city": "City1"}', "3": '{"points": 10}'},
                {"0": '{"email": [{"id": "x@example.com"}]}', "4": "plain"},
            ],
        },
    }
    assert len(client.get(f"{url}?format=json", headers=headers).json()["preview"]["rows"]) == 3
    assert_aep_error(client.get(url, headers=headers), 400, detail_contains="query parameter 'format' is required")
    assert_aep_error(client.get(f"{url}?format=json&nrow=5000", headers=headers), 400,
                     detail_contains="'nrow' must be at most 1000")
    assert_aep_error(client.get(f"{url}?format=parquet", headers=headers), 400,
                     detail_contains="file 'people.json' cannot be read as parquet")
    other = create_dataset(client, headers, "other")
    assert_aep_error(client.get(f"{IMPORT}/batches/{batch_id}/datasets/{other}/preview?format=json", headers=headers),
                     404, detail_contains=f"batch '{batch_id}' has no dataset '{other}'")

    # Once ingested, the preview reads the batch's Parquet in the lake.
    client.post(f"{IMPORT}/batches/{batch_id}?action=COMPLETE", headers=headers)
    drain()
    ingested = client.get(f"{url}?format=json&nrow=1", headers=headers).json()
    assert ingested["formatParams"]["format"] == "parquet"
    (row,) = ingested["preview"]["rows"]
    names = {c["cid"]: c["name"] for c in ingested["preview"]["columns"]}
    assert {names[cid]: value for cid, value in row.items()}["person"] == \
        '{"name": {"firstName": "First1", "lastName": "Last1"}}'


def test_uploads_to_an_export_batch_are_refused(client: TestClient, services: Services, org: Org) -> None:
    headers = org.headers()
    dataset_id = create_dataset(client, headers)
    batch_id = _new_batch(client, headers, dataset_id)
    with services.db.session() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        batch.origin = "export"
    url = f"{IMPORT}/batches/{batch_id}/datasets/{dataset_id}/files/a.json"
    assert_aep_error(client.put(url, headers=headers, content=b"{}"), 400,
                     detail_contains="was created by export, not by the batch ingestion API")
    assert_aep_error(client.post(f"{IMPORT}/batches/{batch_id}?action=COMPLETE", headers=headers), 400,
                     detail_contains="was created by export")
    assert not (services.settings.staging / batch_id / "a.json").exists()
