"""The worker, or the whole server with the worker in its threads (``OPENSEG_WORKER_MODE=thread``), killed (SIGKILL: no clean-up runs) while it ingests a batch, builds the merged profile store,
writes an export or fires a schedule, then started again: every piece of work ends as if the kill never happened,
and until then nothing of it is visible half-written.

As in ``test_crash_recovery.py`` (the segment job's points), the worker is the real ``openseg worker`` in its
own process and kills itself at an exact point, so the test does not depend on timing (``openseg serve``'s
default worker, a child ``openseg worker``, is that ``worker`` case):
- ``lake-before`` / ``lake-after``: just before / just after a batch directory (an ingested batch, or an
  export's batch) is renamed into the lake, before the metadata store records it;
- ``store-before`` / ``store-after``: the same around the publication of a merged-profile build;
- ``fire-before``: the scheduler has claimed a due fire and created its job, before that unit of work commits;
  ``fire-after``: just after it commits (the job is queued, not yet run);
- ``membership-after``: the job a schedule started has put its new membership in place, before the
  transaction that records it.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.catalog.processing import INGEST_BATCH
from openseg.container import Services
from openseg.store.models import Schedule
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_definitions import define
from tests.api.test_exports import EXPORTS, batch_rows, emails, union_dataset
from tests.api.test_segment_jobs import JOBS, load_people, run_job
from tests.conftest import Org, own_home
from tests.e2e.test_crash_recovery import worker_env

#: How long a restarted process may take to stop gracefully.
STOP_SECONDS = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])

#: Runs ``openseg`` with the arguments after argv[1] (``worker``, or ``serve`` with its worker in its threads) after
#: arranging for the process to SIGKILL itself at the point named by argv[1].
WORKER_THAT_DIES = """
import os, signal, sys

point = sys.argv[1]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def dying(publish, after):
    def publish_and_die(*args, **kwargs):
        if not after:
            die()
        published = publish(*args, **kwargs)
        die()
        return published
    return publish_and_die


where, when = point.split("-")
if where == "lake":
    from openseg.atomic_files import StagedDir

    StagedDir.publish = dying(StagedDir.publish, when == "after")
elif where == "store":
    from openseg.profiles import build

    build.publish = dying(build.publish, when == "after")
elif where == "fire":
    # Patched before openseg.bootstrap is imported, which takes ``tick`` by name for the worker.
    from openseg.scheduling import scheduler

    if when == "before":
        scheduler._fire = dying(scheduler._fire, after=True)
    else:
        scheduler.tick = dying(scheduler.tick, after=True)
elif where == "membership":
    from openseg.segmentation import membership

    membership.publish = dying(membership.publish, when == "after")
else:
    raise SystemExit(f"unknown kill point {point}")

from openseg.cli import app

sys.argv = ["openseg", *sys.argv[2:]]
app()
"""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Services, Org, TestClient]]:
    with own_home(tmp_path) as served:
        yield served


def kill_worker_at(services: Services, point: str, process: str = "worker") -> None:
    """Run the worker (``process="worker"``) or the whole server (``"serve"``: API, worker and scheduler in
    one process, as ``OPENSEG_WORKER_MODE=thread`` runs it) until it kills itself at ``point``."""
    command = ["worker"] if process == "worker" else ["serve", "--port", str(_free_port())]
    env = worker_env(services) | ({"OPENSEG_WORKER_MODE": "thread"} if process == "serve" else {})
    died = subprocess.run([sys.executable, "-c", WORKER_THAT_DIES, point, *command], env=env,
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr


def restart_worker_until(services: Services, done: Callable[[], bool]) -> None:
    restarted = subprocess.Popen([str(Path(sys.executable).parent / "openseg"), "worker"], env=worker_env(services),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 90
        while not done() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        restarted.send_signal(signal.SIGINT)
        # A graceful stop first finishes the item in hand, which may be work queued after the one awaited (a
        # profile build): on a loaded 2-core machine, over 30 s.
        output = restarted.communicate(timeout=STOP_SECONDS)[0]
    assert done(), output


def batch(client: TestClient, org: Org, batch_id: str) -> dict[str, Any]:
    answer = client.get(f"/data/foundation/catalog/batches/{batch_id}", headers=org.headers())
    assert answer.status_code == 200, answer.text
    return dict(answer.json()[batch_id])


def lookup(client: TestClient, org: Org, i: int) -> int:
    return client.get("/data/core/ups/access/entities", headers=org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": f"p{i}@example.com", "entityIdNS": "email"}).status_code


def no_partial_files(root: Path) -> bool:
    return not [p for p in root.rglob("*") if ".partial" in p.name]


@pytest.mark.parametrize("point", ["lake-before", "lake-after"])
@pytest.mark.parametrize("process", ["worker", "serve"])
def test_a_batch_whose_worker_was_killed_is_ingested_once_by_the_next(
        home: tuple[Services, Org, TestClient], point: str, process: str) -> None:
    services, org, client = home
    people = create_dataset(client, org.headers())
    batch_id = upload_batch(client, org.headers(), people, {"people.json": json_lines([person(i) for i in range(6)])})

    kill_worker_at(services, point, process)
    # Killed mid-ingestion: the batch is not done, and no reader sees any of its files.
    assert batch(client, org, batch_id)["status"] != "success"
    listed = client.get(f"/data/foundation/export/batches/{batch_id}/files", headers=org.headers())
    assert listed.status_code in (200, 404), listed.text
    assert listed.status_code == 404 or listed.json()["data"] == []

    restart_worker_until(services, lambda: batch(client, org, batch_id)["status"] in ("success", "failed"))
    done = batch(client, org, batch_id)
    assert done["status"] == "success", done
    assert done["metrics"]["recordsWritten"] == 6
    assert len(list((services.settings.lake).rglob("*.parquet"))) == 1
    assert no_partial_files(services.settings.lake)


@pytest.mark.parametrize("point", ["store-before", "store-after"])
@pytest.mark.parametrize("process", ["worker", "serve"])
def test_a_build_whose_worker_was_killed_is_published_whole_by_the_next(
        home: tuple[Services, Org, TestClient], point: str, process: str) -> None:
    services, org, client = home
    assert services.worker is not None
    people = create_dataset(client, org.headers())
    upload_batch(client, org.headers(), people, {"people.json": json_lines([person(i) for i in range(6)])})
    while services.worker.run_once((INGEST_BATCH,)):
        pass  # ingested here; the build it queued is left to the worker that dies

    kill_worker_at(services, point, process)
    # Killed before publishing: there is no build to read yet (409). Killed after: the build is whole on disk,
    # and readers see all of it. Never half of one.
    assert [lookup(client, org, i) for i in range(6)] == [409 if point == "store-before" else 200] * 6

    # Until no build is left to run: killed after publishing, the build is readable at once, but the next worker
    # still runs the build it took back (a lookup alone would stop that worker before it began).
    restart_worker_until(services, lambda: lookup(client, org, 1) == 200 and services.worker.queue.pending() == 0)
    assert [lookup(client, org, i) for i in range(6)] == [200] * 6
    assert no_partial_files(services.settings.home)


@pytest.mark.parametrize("point", ["lake-before", "lake-after"])
@pytest.mark.parametrize("process", ["worker", "serve"])
def test_an_export_whose_worker_was_killed_is_written_once_by_the_next(
        home: tuple[Services, Org, TestClient], point: str, process: str) -> None:
    services, org, client = home
    assert services.worker is not None
    drain = services.worker.run_until_idle
    people = create_dataset(client, org.headers())
    upload_batch(client, org.headers(), people, {"people.json": json_lines([person(i) for i in range(6)])})
    drain()
    us = define(client, org, "US", 'homeAddress.country = "US"')
    run_job(client, org, drain, us["id"])
    target = union_dataset(client, org)
    created = client.post(EXPORTS, headers=org.headers(), json={
        "destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"},
        "filter": {"segments": [{"segmentId": us["id"]}]}})
    assert created.is_success, created.text
    job_id = created.json()["id"]

    def job() -> dict[str, Any]:
        return dict(client.get(f"{EXPORTS}/{job_id}", headers=org.headers()).json())

    def exported_batches() -> list[dict[str, Any]]:
        listed = client.get("/data/foundation/catalog/batches", headers=org.headers(),
                            params={"dataSet": target}).json()
        return [b for b in listed.values() if b["status"] == "success"]

    kill_worker_at(services, point, process)
    # Killed mid-export: the job is not done and the dataset has no batch of it yet.
    assert job()["status"] not in ("SUCCEEDED", "FAILED")
    assert exported_batches() == []

    restart_worker_until(services, lambda: job()["status"] in ("SUCCEEDED", "FAILED"))
    assert job()["status"] == "SUCCEEDED", job()
    (exported,) = exported_batches()
    batch_id = next(b for b, body in client.get("/data/foundation/catalog/batches", headers=org.headers(),
                                                params={"dataSet": target}).json().items() if body == exported)
    assert emails(batch_rows(client, org, batch_id)) == ["p1@example.com", "p3@example.com", "p5@example.com"]
    assert no_partial_files(services.settings.lake)


SCHEDULES = "/data/core/ups/config/schedules"


def due_daily_schedule(client: TestClient, org: Org, services: Services, type: str = "batch_segmentation",
                       properties: dict[str, Any] | None = None) -> str:
    """An active daily schedule (by default of every segment) whose time today, two hours ago, passed since it
    took effect: the first scheduler tick fires it, and its next fire is 22 hours away."""
    hour = (datetime.now(UTC) - timedelta(hours=2)).hour
    created = client.post(SCHEDULES, headers=org.headers(), json={
        "name": "nightly", "type": type, "properties": properties or {"segments": ["*"]},
        "schedule": f"0 0 {hour} * * ?", "state": "active"})
    assert created.status_code == 200, created.text
    with services.db.session() as session:  # as if created two days ago
        row = session.get(Schedule, created.json()["id"])
        assert row is not None
        row.effective_from = int((datetime.now(UTC) - timedelta(days=2)).timestamp() * 1000)
    return str(created.json()["id"])


def segment_jobs(client: TestClient, org: Org) -> list[dict[str, Any]]:
    listed = client.get(JOBS, headers=org.headers(), params={"limit": 100})
    assert listed.status_code == 200, listed.text
    return list(listed.json()["children"])


@pytest.mark.parametrize("point", ["fire-before", "fire-after", "membership-after"])
@pytest.mark.parametrize("process", ["worker", "serve"])
def test_a_schedule_whose_worker_was_killed_as_it_fired_runs_its_job_once(
        home: tuple[Services, Org, TestClient], point: str, process: str) -> None:
    services, org, client = home
    assert services.worker is not None
    load_people(client, org, services.worker.run_until_idle, [person(i) for i in range(6)])  # 1, 3, 5 in the US
    us = define(client, org, "US", 'homeAddress.country = "US"')
    schedule_id = due_daily_schedule(client, org, services)

    kill_worker_at(services, point, process)
    schedule = client.get(f"{SCHEDULES}/{schedule_id}", headers=org.headers()).json()
    if point == "fire-before":
        # Killed before the fire's unit of work committed: neither the fire nor its job was recorded.
        assert segment_jobs(client, org) == []
        assert (schedule["lastRun"], schedule["lastJobId"]) == (None, None)
    else:
        # The fire and its job were recorded together; the job has not finished.
        (job,) = segment_jobs(client, org)
        assert job["status"] == ("QUEUED" if point == "fire-after" else "PROCESSING")
        assert schedule["lastJobId"] == job["id"]

    # The restarted worker's first tick runs before it takes any job, so a second fire would be there by the
    # time the job ends.
    restart_worker_until(services, lambda: [j["status"] for j in segment_jobs(client, org)] in (["SUCCEEDED"], ["FAILED"]))
    (job,) = segment_jobs(client, org)
    assert job["status"] == "SUCCEEDED", job
    assert job["metrics"]["segmentedProfileByStatusCounter"] == {us["id"]: {"realized": 3, "existing": 0, "exited": 0}}
    schedule = client.get(f"{SCHEDULES}/{schedule_id}", headers=org.headers()).json()
    assert schedule["lastJobId"] == job["id"]
    assert schedule["nextRun"] > int(datetime.now(UTC).timestamp() * 1000)
    assert no_partial_files(services.settings.home)


@pytest.mark.parametrize("point", ["fire-before", "fire-after"])
def test_an_export_schedule_whose_worker_was_killed_as_it_fired_exports_once(
        services: Services, org: Org, client: TestClient, point: str) -> None:
    """On each metadata store (on PostgreSQL the fire's row lock dies with the killed worker's connection)."""
    assert services.worker is not None
    drain = services.worker.run_until_idle
    load_people(client, org, drain, [person(i) for i in range(6)])
    us = define(client, org, "US", 'homeAddress.country = "US"')
    run_job(client, org, drain, us["id"])
    target = union_dataset(client, org)
    schedule_id = due_daily_schedule(client, org, services, type="export", properties={
        "filter": {"segments": [{"segmentId": us["id"]}]}, "destination": {"datasetId": target},
        "schema": {"name": "_xdm.context.profile"}})

    def exports() -> list[dict[str, Any]]:
        return list(client.get(EXPORTS, headers=org.headers()).json()["records"])

    kill_worker_at(services, point, "worker")
    schedule = client.get(f"{SCHEDULES}/{schedule_id}", headers=org.headers()).json()
    if point == "fire-before":
        assert exports() == [] and schedule["lastJobId"] is None
    else:
        (job,) = exports()
        assert job["status"] == "NEW" and schedule["lastJobId"] == str(job["id"])

    restart_worker_until(services, lambda: [e["status"] for e in exports()] in (["SUCCEEDED"], ["FAILED"]))
    (job,) = exports()
    assert job["status"] == "SUCCEEDED", job
    assert client.get(f"{SCHEDULES}/{schedule_id}", headers=org.headers()).json()["lastJobId"] == str(job["id"])
    batches = client.get("/data/foundation/catalog/batches", headers=org.headers(), params={"dataSet": target}).json()
    assert list(batches) == [job["destination"]["batchId"]]
    assert emails(batch_rows(client, org, job["destination"]["batchId"])) == [
        "p1@example.com", "p3@example.com", "p5@example.com"]
    assert no_partial_files(services.settings.lake)
