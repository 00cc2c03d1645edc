"""Faults a laptop or a server meets: a full disk and a corrupt Parquet file in the lake.

Each gives a clear error where the user looks (the job's or batch's status and errors, an API answer in AEP's
error shape), never a 500, and leaves what was there before whole: the previous membership keeps serving, and
no half-written file is left behind or visible.

The full disk is real: the service's home (lake, profile stores, membership) is a small tmpfs mounted for the
test (the metadata store stays on the ordinary disk, as it would on another volume or on PostgreSQL).
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import JOBS, load_people, run_job
from tests.conftest import Org, own_home

#: The tmpfs's size: room for a small home, and little more.
HOME_SIZE = "24m"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "home"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={HOME_SIZE}", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


@pytest.fixture
def service(tmp_path: Path, small_disk: Path) -> Iterator[tuple[Services, Org, TestClient]]:
    with own_home(small_disk, metadata_dir=tmp_path) as served:  # the metadata store stays off the full disk
        yield served


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; the filler file's path (delete it to make room again)."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError as full:
                assert full.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


def partial_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".partial" in p.name or p.name.endswith(".tmp")]


def members(client: TestClient, org: Org, segment_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/data/core/ups/segment/definitions/{segment_id}/members", headers=org.headers())
    assert answer.status_code == 200, answer.text
    return list(answer.json()["members"])


def test_a_full_disk_fails_the_job_and_the_upload_clearly_and_keeps_what_was_there(
        service: tuple[Services, Org, TestClient], small_disk: Path) -> None:
    services, org, client = service
    assert services.worker is not None
    drain = services.worker.run_until_idle
    people = load_people(client, org, drain, [person(i) for i in range(6)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    assert run_job(client, org, drain, us["id"])["status"] == "SUCCEEDED"
    before = members(client, org, us["id"])
    assert len(before) == 3

    filler = fill(small_disk)
    # A segment job: FAILED with the reason in plain words (no server path), the previous membership whole.
    queued = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}])
    assert queued.status_code == 200, queued.text
    drain()
    job = client.get(f"{JOBS}/{queued.json()['id']}", headers=org.headers()).json()
    assert job["status"] == "FAILED"
    assert job["errors"] == [{"code": "0090000013", "msg": (
        "no space left on the disk that holds openseg's data (OPENSEG_HOME, OPENSEG_LAKE): nothing was changed; "
        "free some space and try again")}]
    assert members(client, org, us["id"]) == before
    assert partial_files(small_disk) == []

    # An upload: 507 in AEP's error shape, and nothing of the file kept.
    batch = client.post("/data/foundation/import/batches", headers=org.headers(),
                        json={"datasetId": people, "inputFormat": {"format": "json"}})
    assert batch.status_code == 201, batch.text
    batch_id = batch.json()["id"]
    upload = client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{people}/files/more.json",
                        headers={**org.headers(), "Content-Type": "application/octet-stream"},
                        content=json_lines([person(i) for i in range(100, 2000)]))
    assert upload.status_code == 507, upload.text
    body = upload.json()
    assert body["status"] == 507 and body["title"] == "Insufficient storage"
    assert body["detail"].startswith("no space left on the disk that holds openseg's data")
    assert str(small_disk) not in upload.text
    assert partial_files(small_disk) == []

    # Room again: the same upload and the same job succeed.
    filler.unlink()
    assert upload_batch(client, org.headers(), people, {"more.json": json_lines([person(0, homeAddress={"country": "US"})])})
    drain()
    again = run_job(client, org, drain, us["id"])
    assert again["status"] == "SUCCEEDED", again
    assert again["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 1, "existing": 3, "exited": 0}
    assert len(members(client, org, us["id"])) == 4


def test_a_batch_that_fills_the_disk_fails_visibly_and_leaves_no_part_of_itself(
        service: tuple[Services, Org, TestClient], small_disk: Path) -> None:
    services, org, client = service
    assert services.worker is not None
    people = create_dataset(client, org.headers())
    # Uploaded while there is room; the disk fills before the worker writes the batch into the lake.
    batch_id = upload_batch(client, org.headers(), people, {"people.json": json_lines([person(i) for i in range(3000)])})
    filler = fill(small_disk)
    services.worker.run_until_idle()
    answer = client.get(f"/data/foundation/catalog/batches/{batch_id}", headers=org.headers()).json()[batch_id]
    assert answer["status"] == "failed"
    assert answer["errors"] == [{"code": "0090000013", "description": (
        "no space left on the disk that holds openseg's data (OPENSEG_HOME, OPENSEG_LAKE): nothing was changed; "
        "free some space and try again")}]
    assert partial_files(small_disk) == []
    assert not list((small_disk / "lake").rglob("*.parquet"))
    filler.unlink()


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[tuple[Services, Org, TestClient]]:
    with own_home(tmp_path) as served:
        yield served


def test_a_damaged_lake_file_is_named_by_its_batch_everywhere_it_is_read(
        plain: tuple[Services, Org, TestClient]) -> None:
    services, org, client = plain
    assert services.worker is not None
    drain = services.worker.run_until_idle
    people = load_people(client, org, drain, [person(i) for i in range(6)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    assert run_job(client, org, drain, us["id"])["status"] == "SUCCEEDED"
    # A second merge policy, whose store is built from every batch when its first job runs.
    policy = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "no graph", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"},
        "schema": {"name": "_xdm.context.profile"}})
    assert policy.is_success, policy.text
    us_too = define(client, org, "US too", 'homeAddress.country = "US"', mergePolicyId=policy.json()["id"])
    (damaged,) = (services.settings.lake).rglob("*.parquet")
    batch_id = damaged.parent.name
    original = damaged.read_bytes()
    damaged.write_bytes(b"PAR1 no longer a Parquet file PAR1")
    named = f"a file of batch '{batch_id}' (dataset '{people}')"

    # A preview (it reads the batches' schemas): a 409 naming the batch, not a 500.
    preview = client.post("/data/core/ups/preview", headers=org.headers(), json={
        "predicateExpression": 'homeAddress.country = "US"', "predicateType": "pql/text",
        "predicateModel": "_xdm.context.profile"})
    assert preview.status_code == 409, preview.text
    assert preview.json()["detail"] == (
        f"{named} cannot be read (not a readable Parquet file): the lake was changed or damaged outside openseg; delete the "
        "batch or ingest it again")
    assert preview.json()["report"] == {"code": "0090000014", "datasetId": people, "batchId": batch_id}

    # A job that must read the batch: FAILED, naming it, not the server's path.
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us_too["id"]}])
    assert job.is_success, job.text
    drain()
    failed_job = client.get(f"{JOBS}/{job.json()['id']}", headers=org.headers()).json()
    assert failed_job["status"] == "FAILED"
    (error,) = failed_job["errors"]
    assert named in error["msg"] and str(services.settings.lake) not in error["msg"], error

    # A query over the dataset: FAILED, naming the batch, not the server's path.
    query = client.post("/data/foundation/query/queries", headers=org.headers(),
                        json={"dbName": "prod:all", "sql": "SELECT count(*) FROM people"})
    assert query.status_code == 202, query.text
    drain()
    failed = client.get(f"/data/foundation/query/queries/{query.json()['id']}", headers=org.headers()).json()
    assert failed["state"] == "FAILED"
    (error,) = failed["errors"]
    assert named in error["message"] and str(services.settings.lake) not in error["message"]

    # The file restored (from a backup, say), the same preview answers: nothing kept the damage.
    damaged.write_bytes(original)
    again = client.post("/data/core/ups/preview", headers=org.headers(), json={
        "predicateExpression": 'homeAddress.country = "US"', "predicateType": "pql/text",
        "predicateModel": "_xdm.context.profile"})
    assert again.is_success, again.text
    assert [r["entityId"] for r in again.json()["results"]] == [f"email:p{i}@example.com" for i in (1, 3, 5)]
