"""A worker process killed in the middle of a segment job, then started again: the job ends SUCCEEDED and the
membership readers see is the previous job's until then and the whole new one after, never part of it.

The worker is the real ``openseg worker`` command in its own process. A small wrapper makes it kill itself
(SIGKILL: no clean-up runs) at an exact point of the job, so the test does not depend on timing:
- ``evaluating``: after the first stage of the plan has run;
- ``staging``: after the new membership and history files are written beside their places, before they
  are moved there (staged files are named after the job, so the retry's replace the dead run's);
- ``publishing``: after the new membership and history files are in place, before the transaction that
  points the store at them and marks the job SUCCEEDED.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.store.models import ProfileStore, SegmentJob
from tests.api.flows import person
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import JOBS, load_people, run_job
from tests.conftest import Org, own_home

#: How long a restarted process may take to stop gracefully.
STOP_SECONDS = 120

#: Runs ``openseg worker`` after arranging for the process to SIGKILL itself at the point named by argv[1].
WORKER_THAT_DIES = """
import os, signal, sys

point = sys.argv[1]


def die():
    os.kill(os.getpid(), signal.SIGKILL)


if point == "evaluating":
    from openseg.engines.duckdb import DuckDBEngine

    staged = DuckDBEngine.materialize_staged

    def materialize_staged(self, connection, stages, final, tables, name, on_stage=None):
        return staged(self, connection, stages, final, tables, name, lambda run: die())

    DuckDBEngine.materialize_staged = materialize_staged
elif point == "staging":
    from openseg.segmentation.membership import MembershipDiffer

    stage = MembershipDiffer.stage

    def stage_then_die(self, job_id):
        staged = stage(self, job_id)  # kept: a dropped StagedFile deletes its file
        die()
        return staged

    MembershipDiffer.stage = stage_then_die
elif point == "publishing":
    from openseg.segmentation import membership

    publish = membership.publish

    def publish_then_die(staged):
        publish(staged)
        die()

    membership.publish = publish_then_die
else:
    raise SystemExit(f"unknown kill point {point}")

from openseg.cli import app

sys.argv = ["openseg", "worker"]
app()
"""


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Services, Org, TestClient]]:
    with own_home(tmp_path) as served:
        yield served


def worker_env(services: Services) -> dict[str, str]:
    return {**os.environ, "OPENSEG_HOME": str(services.settings.home),
            "OPENSEG_DATABASE_URL": services.settings.database_url, "OPENSEG_LAKE": str(services.settings.lake)}


def job_state(services: Services, job_id: str) -> tuple[str, str | None]:
    """The job's status and the membership file its merge policy's store points at."""
    with services.db.session() as session:
        job = session.get(SegmentJob, job_id)
        assert job is not None
        policy_id = job.segments[0]["segment"]["mergePolicy"]["id"]
        store = session.get(ProfileStore, policy_id)
        return job.status, store.membership_path if store else None


def members(client: TestClient, org: Org, segment_id: str) -> list[dict[str, Any]]:
    """Who is in the segment now, from the membership history of the jobs that succeeded."""
    answer = client.get(f"/data/core/ups/segment/definitions/{segment_id}/members", headers=org.headers())
    assert answer.status_code == 200, answer.text
    return list(answer.json()["members"])


def statuses(client: TestClient, org: Org, segment_id: str) -> dict[int, str | None]:
    """Each person's status in the segment as ``/access/entities`` shows it (the current membership file)."""
    found = {}
    for i in range(6):
        answer = client.get("/data/core/ups/access/entities", headers=org.headers(), params={
            "schema.name": "_xdm.context.profile", "entityId": f"p{i}@example.com", "entityIdNS": "email"})
        assert answer.status_code == 200, answer.text
        (entity,) = answer.json().values()
        ups = entity["entity"].get("segmentMembership", {}).get("ups", {})
        found[i] = ups[segment_id]["status"] if segment_id in ups else None
    return found


@pytest.mark.parametrize("point", ["evaluating", "staging", "publishing"])
def test_a_killed_worker_leaves_the_old_membership_and_the_restarted_one_finishes_the_job(
        home: tuple[Services, Org, TestClient], point: str) -> None:
    services, org, client = home
    assert services.worker is not None
    drain = services.worker.run_until_idle
    dataset = load_people(client, org, drain, [person(i) for i in range(6)])  # 1, 3 and 5 live in the US
    us = define(client, org, "US", 'homeAddress.country = "US"')
    first = run_job(client, org, drain, us["id"])
    assert first["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 3, "existing": 0, "exited": 0}
    before = members(client, org, us["id"])
    assert len(before) == 3
    in_first = {0: None, 1: "realized", 2: None, 3: "realized", 4: None, 5: "realized"}
    assert statuses(client, org, us["id"]) == in_first
    # Profile 0 moves to the US, profile 1 leaves it; then a job is queued for the worker process.
    load_people(client, org, drain, [person(0, homeAddress={"country": "US"}), person(1, homeAddress={"country": "FR"})],
                dataset_id=dataset)
    second = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()
    _, first_membership = job_state(services, first["id"])

    died = subprocess.run([sys.executable, "-c", WORKER_THAT_DIES, point], env=worker_env(services),
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stdout + died.stderr
    # Killed mid-job: the job looks stuck and readers still see the first job's membership, whole.
    assert job_state(services, second["id"]) == ("PROCESSING", first_membership)
    assert members(client, org, us["id"]) == before
    assert statuses(client, org, us["id"]) == in_first
    staged = list(services.settings.home.rglob("*.partial"))
    # Killed after staging: the new snapshot, pairs, history and state manifest wait beside their places.
    assert len(staged) == (4 if point == "staging" else 0)

    restarted = subprocess.Popen([str(Path(sys.executable).parent / "openseg"), "worker"], env=worker_env(services),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while job_state(services, second["id"])[0] not in ("SUCCEEDED", "FAILED") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        restarted.send_signal(signal.SIGINT)
        # A graceful stop first finishes the item in hand, which may be work queued after the one awaited (a
        # profile build): on a loaded 2-core machine, over 30 s.
        output = restarted.communicate(timeout=STOP_SECONDS)[0]
    status, membership = job_state(services, second["id"])
    assert status == "SUCCEEDED", output
    assert membership is not None and membership != first_membership
    done = client.get(f"{JOBS}/{second['id']}", headers=org.headers()).json()
    assert done["metrics"]["segmentedProfileByStatusCounter"][us["id"]] == {"realized": 1, "existing": 2, "exited": 1}
    assert statuses(client, org, us["id"]) == {0: "realized", 1: "exited", 2: None, 3: "existing", 4: None,
                                               5: "existing"}
    assert len(members(client, org, us["id"])) == 3 and members(client, org, us["id"]) != before
    assert not list(services.settings.home.rglob("*.partial"))
