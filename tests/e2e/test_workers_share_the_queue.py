"""Several ``openseg worker`` processes share one metadata store and one lake (as workers on several hosts do):
every queued item runs once, in one of them, and jobs of one merge policy still see each other's membership."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from openseg.api.app import create_app
from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.container import Services
from openseg.store.models import WorkItem
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import JOBS
from tests.conftest import Org, make_org

WORKERS = 3
JOB_COUNT = 8


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Services, Org, TestClient]]:
    services = build_services(Settings(home=tmp_path / "home", database_url=database_url,
                                       lake=tmp_path / "home" / "lake"))
    try:
        with TestClient(create_app(services, run_worker=False)) as client:
            yield services, make_org(services), client
    finally:
        services.db.dispose()


def _wait(check: object, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "not done in time"
        time.sleep(0.2)


def test_worker_processes_share_the_queue_and_run_each_item_once(
        served: tuple[Services, Org, TestClient]) -> None:
    services, org, client = served
    env = {**os.environ, "OPENSEG_HOME": str(services.settings.home),
           "OPENSEG_DATABASE_URL": services.settings.database_url, "OPENSEG_LAKE": str(services.settings.lake),
           "OPENSEG_STREAMER": "off"}
    openseg = str(Path(sys.executable).parent / "openseg")
    workers = [subprocess.Popen([openseg, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True) for _ in range(WORKERS)]
    try:
        us = define(client, org, "US", 'homeAddress.country = "US"')  # odd i: 15 of 30 (its merge policy exists)
        dataset = create_dataset(client, org.headers())
        for part in range(3):  # three batches, ingested by whichever worker claims each
            upload_batch(client, org.headers(), dataset,
                         {"people.json": json_lines([person(i) for i in range(part * 10, part * 10 + 10)])})
        batches = client.get("/data/foundation/catalog/batches", headers=org.headers()).json()
        _wait(lambda: all(b["status"] == "success" for b in
                          client.get("/data/foundation/catalog/batches", headers=org.headers()).json().values()))
        assert len(batches) == 3

        # The first job builds the profile store (no build runs before a job needs one); the rest are queued at
        # once, for whichever worker is free.
        jobs = [client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()["id"]]
        _wait(lambda: client.get(f"{JOBS}/{jobs[0]}", headers=org.headers()).json()["status"] in ("SUCCEEDED", "FAILED"))
        jobs += [client.post(JOBS, headers=org.headers(), json=[{"segmentId": us["id"]}]).json()["id"]
                for _ in range(JOB_COUNT - 1)]

        def statuses() -> list[str]:
            return [client.get(f"{JOBS}/{job}", headers=org.headers()).json()["status"] for job in jobs]

        _wait(lambda: all(s in ("SUCCEEDED", "FAILED") for s in statuses()))
        assert statuses() == ["SUCCEEDED"] * JOB_COUNT, [
            client.get(f"{JOBS}/{job}", headers=org.headers()).json().get("errors") for job in jobs]
        with services.db.session() as session:
            items = session.query(WorkItem).all()
            ran = [(item.kind, item.status, item.attempts) for item in items]
            claimers = {item.claimed_by for item in items}
        # Every item ran once (none claimed twice, none retried), and more than one process took work.
        assert sorted(set(ran)) == sorted({(kind, "done", 1) for kind, _, _ in ran}), ran
        assert len(claimers) >= 2, claimers
        # The jobs ran one after another for the policy, each diffing against the last one's membership: every
        # US profile entered once in all (the first job may have run before the third batch's refresh), nobody left.
        counters = [client.get(f"{JOBS}/{job}", headers=org.headers()).json()["metrics"]
                    ["segmentedProfileByStatusCounter"][us["id"]] for job in jobs]
        assert sum(c["realized"] for c in counters) == 15 and all(c["exited"] == 0 for c in counters), counters
        assert counters[-1]["realized"] + counters[-1]["existing"] == 15, counters
        members = client.get(f"/data/core/ups/segment/definitions/{us['id']}/members", headers=org.headers())
        assert members.status_code == 200 and len(members.json()["members"]) == 15
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        for worker in workers:
            try:
                worker.communicate(timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a stuck worker fails the test below
                worker.kill()
                raise
