"""The worker's segment job handler on in-memory fakes: what it writes of the job and the profile store record.

The job runs on ``SegmentJobServices``; here the profile services' fakes (``tests/profiles/fakes.py``) with the
segment jobs of segmentation's (``tests/segmentation/fakes.py``), and a real engine over a real (tiny) lake.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from openseg import job_lifecycle
from openseg.clock import ms_to_datetime
from openseg.profiles.model import MergePolicy
from openseg.segmentation import job_execution
from openseg.segmentation.model import SegmentDefinition, SegmentJob
from tests.profiles.conftest import ENGINE, Lake, ids
from tests.profiles.fakes import FakeServices, FakeSettings, FakeStore, FakeUnitOfWork, SourceBatch
from tests.segmentation.fakes import FakeSegmentDefinitionRepository, FakeSegmentJobRepository, Scope

NOW = 1_767_225_600_000  # 2026-01-01
HERE = Scope()


@dataclass
class JobStore(FakeStore):
    jobs: dict[str, SegmentJob] = field(default_factory=dict)
    definitions: dict[str, SegmentDefinition] = field(default_factory=dict)
    versions: dict[tuple[str, int], SegmentDefinition] = field(default_factory=dict)


class JobUnitOfWork(FakeUnitOfWork):
    segment_jobs: FakeSegmentJobRepository
    segment_definitions: FakeSegmentDefinitionRepository

    def _begin(self) -> None:
        super()._begin()
        assert isinstance(self._working, JobStore)
        self.segment_jobs = FakeSegmentJobRepository(self._working.jobs)
        self.segment_definitions = FakeSegmentDefinitionRepository(self._working.definitions, self._working.versions)


@dataclass(frozen=True)
class JobSettings(FakeSettings):
    membership_snapshots: int = 2


@dataclass
class JobServices(FakeServices):
    store: JobStore

    def uow(self) -> JobUnitOfWork:
        return JobUnitOfWork(self.store)


@dataclass(frozen=True)
class Item:
    ref_id: str
    attempts: int = 1


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> JobServices:
    monkeypatch.setattr(job_execution, "now_ms", lambda: NOW)
    monkeypatch.setattr(job_lifecycle, "now_ms", lambda: NOW)
    made = JobServices(JobSettings(tmp_path / "home"), JobStore(), ENGINE)
    made.store.policies["mp-1"] = MergePolicy.default_for(HERE.org_id, HERE.sandbox_id, policy_id="mp-1", now=NOW)
    return made


def queue(services: JobServices, job_id: str, status: str = "QUEUED", policy_id: str = "mp-1",
          pql: str = 'person.name.firstName = "Ann"') -> SegmentJob:
    job = SegmentJob(id=job_id, org_id=HERE.org_id, sandbox_id=HERE.sandbox_id, compute_job_id=1, request_id="r",
                     status=status, segments=[{"segmentId": "s1", "segment": {
                         "id": "s1", "expression": {"type": "PQL", "format": "pql/text", "value": pql},
                         "mergePolicy": {"id": policy_id, "version": 1}}}],
                     errors=[], metrics={}, origin="api", created=NOW - 1_000, updated=NOW - 1_000)
    services.store.jobs[job_id] = job
    return job


def test_a_job_cancelled_before_it_ran_ends_cancelled(services: JobServices) -> None:
    queue(services, "j1", status="CANCELLING")
    job_execution.run_segment_job(services, Item("j1"))
    job = services.store.jobs["j1"]
    assert (job.status, job.updated, job.errors) == ("CANCELLED", NOW, [])
    assert job.metrics == {"totalTime": {"startTimeInMs": NOW, "endTimeInMs": NOW, "totalTimeInMs": 0}}
    assert services.store.profile_stores == {}  # nothing was built or evaluated


def test_a_job_interrupted_too_often_fails(services: JobServices) -> None:
    queue(services, "j1")
    job_execution.run_segment_job(services, Item("j1", attempts=job_execution.MAX_ATTEMPTS + 1))
    job = services.store.jobs["j1"]
    assert job.status == "FAILED"
    assert job.errors == [{"code": "0090000010", "msg": "the job was interrupted 3 times; giving up"}]


def test_a_job_whose_merge_policy_is_gone_fails(services: JobServices) -> None:
    queue(services, "j1", policy_id="mp-gone")
    job_execution.run_segment_job(services, Item("j1"))
    job = services.store.jobs["j1"]
    assert job.status == "FAILED"
    assert job.errors == [{"code": "0090000011", "msg": "merge policy 'mp-gone' of segment(s) s1 no longer exists"}]


def test_a_job_publishes_membership_and_its_counts(services: JobServices, tmp_path: Path) -> None:
    lake = Lake(tmp_path / "lake")
    lake.root.mkdir()
    records: list[dict[str, Any]] = [
        {"identityMap": ids(("email", "ann@x"), primary="ann@x"), "person": {"name": {"firstName": "Ann"}}},
        {"identityMap": ids(("email", "bob@x"), primary="bob@x"), "person": {"name": {"firstName": "Bob"}}},
    ]
    source = lake.add("profile", records, ingest=ms_to_datetime(NOW - 60_000).replace(tzinfo=None))
    services.store.batches["b1"] = SourceBatch(HERE.sandbox_id, "success", NOW - 60_000, [source])
    queue(services, "j1")
    job_execution.run_segment_job(services, Item("j1"))
    job = services.store.jobs["j1"]
    assert (job.status, job.errors) == ("SUCCEEDED", [])
    assert job.metrics["totalProfiles"] == 2
    assert job.metrics["segmentedProfileCounter"] == {"s1": 1}
    assert job.metrics["segmentedProfileByStatusCounter"] == {"s1": {"realized": 1, "existing": 0, "exited": 0}}
    record = services.store.profile_stores["mp-1"]
    assert record.membership_job_id == "j1" and record.membership_path is not None
    members = job_execution.membership_store(services, HERE.sandbox_id, "mp-1")
    assert {p: sorted(s) for p, s in members.lookup(members.state(record.membership_path),
                                                    ["email:ann@x", "email:bob@x"]).items()} == {
        "email:ann@x": ["s1"], "email:bob@x": []}
