"""Export request validation and the export job runner on in-memory fakes of their ports: no database.

The same behaviour is pinned over HTTP and real stores by ``tests/api/test_exports.py``; these reach what
is awkward there: what a job that can no longer run leaves behind (its job record, its reserved batches),
and exactly what a successful run records of the batches it publishes and the ones it replaces.
Profile builds and exports run on DuckDB over a tiny lake (``tests/profiles/conftest.Lake``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from openseg.catalog import lake as lake_dir
from openseg.clock import ms_to_datetime
from openseg.errors import BadRequest, NotFound
from openseg.exports import job_execution, jobs
from openseg.exports.model import UNION_SCHEMA, ExportJob
from openseg.exports.request import validate
from openseg.profiles import service
from openseg.profiles.model import MergePolicy
from openseg.segmentation.model import SegmentDefinition
from tests.exports.fakes import FakeServices, FakeSettings, FakeStore, FakeUnitOfWork, Scope, StoredBatch, StoredDataset
from tests.profiles.conftest import ENGINE, Lake, ids
from tests.profiles.fakes import SourceBatch

HERE = Scope()
NOW = 1_760_000_000_000
PEOPLE = [{"identityMap": ids(("email", f"p{i}@x"), primary=f"p{i}@x"), "homeAddress": {"country": "US"}}
          for i in range(3)]


@pytest.fixture
def store() -> FakeStore:
    made = FakeStore()
    made.datasets = {"ds-union": StoredDataset(HERE.org_id, HERE.sandbox_id, "union"),
                     "ds-crm": StoredDataset(HERE.org_id, HERE.sandbox_id, "profile"),
                     "ds-other": StoredDataset(HERE.org_id, "sandbox-dev", "union")}
    return made


def policy(store: FakeStore, policy_id: str, *, default: bool = False, scope: Scope = HERE) -> MergePolicy:
    made = replace(MergePolicy.default_for(scope.org_id, scope.sandbox_id, policy_id=policy_id, now=NOW),
                   is_default=default, version=3)
    store.policies[made.id] = made
    return made


def definition(store: FakeStore, definition_id: str, policy_id: str, *, scope: Scope = HERE) -> None:
    store.definitions[definition_id] = SegmentDefinition(
        id=definition_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=definition_id, description=None,
        expression={"type": "PQL", "format": "pql/text", "value": "true"}, pql="true",
        schema_name="_xdm.context.profile", merge_policy_id=policy_id, ttl_in_days=30, evaluation_info={},
        labels=[], dependencies=[], lifecycle_state="published", version=1, created=NOW, updated=NOW)


def request(**extra: Any) -> dict[str, Any]:
    return {"destination": {"datasetId": "ds-union"}, "schema": {"name": "_xdm.context.profile"}, **extra}


def check(store: FakeStore, body: dict[str, Any]) -> tuple[str, int]:
    with FakeUnitOfWork(store) as uow:
        validated = validate(uow, HERE, body)
        uow.commit()
    return validated.merge_policy_id, validated.merge_policy_version


@pytest.mark.parametrize(("body", "field", "detail"), [
    (request(destination={"datasetId": "ds-nope"}), "destination.datasetId",
     "'destination.datasetId': dataset 'ds-nope' does not exist in this sandbox"),
    (request(destination={"datasetId": "ds-other"}), "destination.datasetId",
     "'destination.datasetId': dataset 'ds-other' does not exist in this sandbox"),
    (request(destination={"datasetId": "ds-crm"}), "destination.datasetId",
     f"'destination.datasetId': dataset 'ds-crm' is not based on the profile union schema ({UNION_SCHEMA})"),
    (request(filter={"segments": [{"segmentId": "seg-dev"}]}), "filter.segments[0].segmentId",
     "'filter.segments[0].segmentId': segment definition 'seg-dev' does not exist in this sandbox"),
    (request(mergePolicy={"id": "mp-dev"}), "mergePolicy.id",
     "'mergePolicy.id': merge policy 'mp-dev' does not exist in this sandbox"),
    (request(filter={"segments": [{"segmentId": "seg-a"}, {"segmentId": "seg-b"}]}), "mergePolicy",
     "the segments use different merge policies: set 'mergePolicy' to choose one"),
])
def test_a_request_naming_what_the_sandbox_lacks_is_refused(store: FakeStore, body: dict[str, Any], field: str,
                                                            detail: str) -> None:
    policy(store, "mp-a")
    policy(store, "mp-b")
    policy(store, "mp-dev", scope=Scope(sandbox_id="sandbox-dev"))
    definition(store, "seg-a", "mp-a")
    definition(store, "seg-b", "mp-b")
    definition(store, "seg-dev", "mp-dev", scope=Scope(sandbox_id="sandbox-dev"))
    with pytest.raises(BadRequest) as refused:
        check(store, body)
    assert (refused.value.field, refused.value.detail) == (field, detail)


def test_the_merge_policy_is_the_requests_else_its_segments_else_the_default(store: FakeStore) -> None:
    policy(store, "mp-a")
    policy(store, "mp-b")
    definition(store, "seg-a", "mp-a")
    assert check(store, request(mergePolicy={"id": "mp-b"})) == ("mp-b", 3)
    segments = [{"segmentId": "seg-a"}, {"segmentId": "other", "segmentNs": "AAM"}]  # not UPS: no policy of its own
    assert check(store, request(filter={"segments": segments})) == ("mp-a", 3)
    assert set(store.policies) == {"mp-a", "mp-b"}
    made, version = check(store, request())  # no default yet: created, and kept
    assert version == 1 and store.policies[made].is_default and set(store.policies) == {"mp-a", "mp-b", made}
    assert check(store, request()) == (made, 1)


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    """The profile sources, written as Parquet files under the test's directory."""
    (tmp_path / "sources").mkdir()
    return Lake(tmp_path / "sources")


@pytest.fixture
def services(tmp_path: Path, store: FakeStore, monkeypatch: pytest.MonkeyPatch) -> FakeServices:
    monkeypatch.setattr(service, "now_ms", lambda: NOW)
    return FakeServices(FakeSettings(tmp_path / "home"), store, ENGINE)


def queue_export(store: FakeStore, job_id: int, body: dict[str, Any], *, status: str = "NEW") -> ExportJob:
    store.export_batches[f"batch-{job_id}"] = StoredBatch("ds-union", "loading", updated=NOW)
    job = ExportJob(id=job_id, org_id=HERE.org_id, sandbox_id=HERE.sandbox_id, request=body, status=status,
                    request_id="r", errors=[], metrics={"totalTime": {"startTimeInMs": NOW}},
                    destination={"datasetId": "ds-union", "segmentPerBatch": False, "batchId": f"batch-{job_id}"},
                    origin="api", created=NOW, updated=NOW)
    store.jobs[job_id] = job
    return job


class Item:
    def __init__(self, ref_id: str) -> None:
        self.ref_id = ref_id


def test_an_export_publishes_its_batch_and_replaces_the_last_export(services: FakeServices, store: FakeStore,
                                                                    lake: Lake) -> None:
    policy(store, "mp-a", default=True)
    source = lake.add("profile", PEOPLE, ingest=ms_to_datetime(NOW - 60_000).replace(tzinfo=None))
    store.batches["b1"] = SourceBatch(HERE.sandbox_id, "success", NOW - 60_000, [source])
    store.export_batches["earlier"] = StoredBatch("ds-union", "success", updated=NOW - 1)
    queue_export(store, 7, {**request(fields="homeAddress.country"), "mergePolicy": {"id": "mp-a", "version": 3}})
    job_execution.run_export(services, Item("7"))
    job = store.jobs[7]
    assert (job.status, job.errors, job.metrics["openseg:exportedProfiles"]) == ("SUCCEEDED", [], 3)
    assert job.metrics["totalTime"]["startTimeInMs"] == NOW
    published = store.export_batches["batch-7"]
    [(path, rows)] = published.files
    assert (published.status, rows) == ("success", 3) and published.started is not None
    assert Path(path) == lake_dir.batch_dir(services.settings.lake, HERE.sandbox_id, "ds-union", "batch-7") / \
        lake_dir.part_name(0)
    assert pq.read_table(path).num_rows == 3
    assert store.export_batches["earlier"].status == "replaced"
    assert store.profile_stores["mp-a"].policy_version == 3  # the job built the store it needed


def test_a_request_no_longer_valid_fails_the_job_and_its_batch(services: FakeServices, store: FakeStore) -> None:
    policy(store, "mp-a", default=True)
    queue_export(store, 8, {**request(), "mergePolicy": {"id": "mp-a", "version": 3}})
    del store.datasets["ds-union"]  # the destination went since the job was created
    job_execution.run_export(services, Item("8"))
    job = store.jobs[8]
    assert job.status == "FAILED"
    assert job.errors == [{"code": "0090000009", "msg": "the export request is no longer valid: 'destination.datasetId': "
                                                       "dataset 'ds-union' does not exist in this sandbox"}]
    assert store.export_batches["batch-8"].status == "failed"


def test_a_cancelled_export_aborts_its_batch_and_keeps_its_record(services: FakeServices, store: FakeStore) -> None:
    queued = queue_export(store, 9, request(), status="CANCELLED")
    job_execution.run_export(services, Item("9"))
    assert store.jobs[9] == queued
    assert store.export_batches["batch-9"].status == "aborted"
    job_execution.run_export(services, Item("404"))  # a job gone is nothing to do


# ------------------------------------------------------------------------------------ the job resource


def test_an_export_per_segment_reserves_a_batch_each_and_is_queued(store: FakeStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "now_ms", lambda: NOW)
    policy(store, "mp-1", default=True)
    definition(store, "seg-a", "mp-1")
    definition(store, "seg-b", "mp-1")
    body = request(destination={"datasetId": "ds-union", "segmentPerBatch": True},
                   filter={"segments": [{"segmentId": "seg-a"}, {"segmentId": "seg-b", "status": ["exited"]}]})
    job = jobs.create_export(FakeUnitOfWork(store), HERE, body, origin="cli")
    assert store.jobs == {job.id: job}
    assert (job.status, job.origin, job.created, job.request["mergePolicy"]) == (
        "NEW", "cli", NOW, {"id": "mp-1", "version": 3})
    assert job.destination == {"datasetId": "ds-union", "segmentPerBatch": True, "batches": [
        {"segmentId": "seg-a", "segmentNs": "UPS", "status": ["realized", "existing"], "batchId": "batch-1"},
        {"segmentId": "seg-b", "segmentNs": "UPS", "status": ["exited"], "batchId": "batch-2"}]}
    assert store.export_batches == {f"batch-{n}": StoredBatch("ds-union", "loading", updated=NOW) for n in (1, 2)}
    assert store.queue == [[jobs.RUN_EXPORT, str(job.id), "queued"]]
    with pytest.raises(BadRequest, match="'destination.datasetId'"):
        jobs.create_export(FakeUnitOfWork(store), HERE, request(destination={"datasetId": "ds-nope"}))
    assert list(store.jobs) == [job.id] and len(store.export_batches) == 2  # nothing of the refused one


def test_export_jobs_are_listed_cancelled_and_deleted(store: FakeStore) -> None:
    policy(store, "mp-1", default=True)
    made = [jobs.create_export(FakeUnitOfWork(store), HERE, request()) for _ in range(3)]
    assert jobs.cancel_export(FakeUnitOfWork(store), HERE, str(made[0].id)).status == "CANCELLED"
    with pytest.raises(BadRequest, match=f"export job {made[0].id} is CANCELLED"):
        jobs.cancel_export(FakeUnitOfWork(store), HERE, str(made[0].id))
    assert jobs.delete_export(FakeUnitOfWork(store), HERE, str(made[0].id)) is None  # finished: deleted
    assert jobs.delete_export(FakeUnitOfWork(store), HERE, str(made[1].id)).status == "CANCELLED"  # type: ignore[union-attr]
    assert store.jobs[made[0].id].status == jobs.DELETED
    for unknown in (str(made[0].id), "12x", str(made[2].id + 1)):
        with pytest.raises(NotFound):
            jobs.get_export(FakeUnitOfWork(store), HERE, unknown)
    with pytest.raises(NotFound):
        jobs.get_export(FakeUnitOfWork(store), Scope(sandbox_id="sandbox-dev"), str(made[2].id))
    rows, more = jobs.list_exports(FakeUnitOfWork(store), HERE, limit=1, offset=None)
    assert ([j.id for j in rows], more) == ([made[2].id], True)
    rows, more = jobs.list_exports(FakeUnitOfWork(store), HERE, limit=5, offset=jobs.cursor(rows[0]))
    assert ([j.id for j in rows], more) == ([made[1].id], False)
    rows, _ = jobs.list_exports(FakeUnitOfWork(store), HERE, limit=5, offset=None, status="cancelled")
    assert [j.id for j in rows] == [made[1].id]
    with pytest.raises(BadRequest, match="'status' must be one of") as raised:
        jobs.list_exports(FakeUnitOfWork(store), HERE, limit=5, offset=None, status="deleted")
    assert raised.value.field == "status"
