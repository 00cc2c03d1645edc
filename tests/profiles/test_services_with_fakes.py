"""The profile store services and profile access on in-memory fakes of their ports: no database.

The same behaviour is pinned over HTTP and real stores by ``tests/api/test_profiles.py`` and
``tests/api/test_no_build_on_read.py``; these reach what is awkward there: exactly which record a build
writes, when a request queues a build and when it does not, what erasure records of the files it rewrites.
Builds run on DuckDB over a tiny lake (``conftest.Lake``).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from openseg.clock import ms_to_datetime
from openseg.errors import BadRequest, Conflict, NotFound
from openseg.profiles import entities, policies, service
from openseg.profiles.model import MergePolicy, ProfileStoreRecord
from openseg.profiles.service import BUILD_PROFILES, ProfileStoreNotBuilt, ServingStore
from openseg.profiles.store import resolve_store
from tests.profiles.conftest import ENGINE, Lake, ids
from tests.profiles.fakes import FakeServices, FakeSettings, FakeStore, Scope, SourceBatch

HERE = Scope()
NOW = 1_760_000_000_000
ANN = {"identityMap": ids(("email", "ann@x"), ("ECID", "1"), primary="ann@x"), "homeAddress": {"country": "US"}}
BOB = {"identityMap": ids(("email", "bob@x"), primary="bob@x"), "homeAddress": {"country": "FR"}}


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The services' wall clock, moved by the test."""
    now = [NOW]
    monkeypatch.setattr(service, "now_ms", lambda: now[0])
    monkeypatch.setattr(policies, "now_ms", lambda: now[0])
    return now


@pytest.fixture
def services(tmp_path: Path, clock: list[int]) -> FakeServices:
    return FakeServices(FakeSettings(tmp_path / "home"), FakeStore(), ENGINE)


def land(services: FakeServices, lake: Lake, batch_id: str, records: list[dict[str, Any]], *, completed: int,
         kind: str = "profile", status: str = "success", streamed: bool = False) -> None:
    """A batch of a profile-enabled dataset holding ``records`` in one file (``streamed``: flushed from the
    stream log)."""
    source = lake.add(kind, records, dataset="ds-web" if kind == "event" else "ds-crm",  # type: ignore[arg-type]
                      ingest=ms_to_datetime(completed).replace(tzinfo=None))
    services.store.batches[batch_id] = SourceBatch(HERE.sandbox_id, status, completed, [source], streamed)


def policy(services: FakeServices, policy_id: str = "mp-1", *, version: int = 1, scope: Scope = HERE) -> MergePolicy:
    made = replace(MergePolicy.default_for(scope.org_id, scope.sandbox_id, policy_id=policy_id, now=NOW),
                   version=version)
    services.store.policies[made.id] = made
    return made


def builds_queued(services: FakeServices) -> list[list[str]]:
    return [item for item in services.store.queue if item[0] == BUILD_PROFILES]


def test_a_profile_source_batch_queues_one_build(services: FakeServices) -> None:
    services.store.batches["b1"] = SourceBatch(HERE.sandbox_id, "loading", 0)
    service.after_batch(services, "b1")
    service.after_batch(services, "b1")  # one build waiting is enough
    service.after_batch(services, "not-a-source-batch")
    assert services.store.queue == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]


def test_a_policy_never_built_answers_409_and_queues_a_build(services: FakeServices, lake: Lake) -> None:
    land(services, lake, "b1", [ANN], completed=NOW - 60_000)
    mp = policy(services)
    with pytest.raises(ProfileStoreNotBuilt) as queued:
        service.serving_store(services, HERE, mp)
    assert (queued.value.status, queued.value.report, queued.value.has_data) == (
        409, {"mergePolicyId": "mp-1", "profileBuild": "queued"}, True)
    services.store.queue[0][2] = "running"  # a worker took it
    with pytest.raises(ProfileStoreNotBuilt) as running:
        service.serving_store(services, HERE, mp)
    assert running.value.report == {"mergePolicyId": "mp-1", "profileBuild": "running"}
    assert services.store.queue == [[BUILD_PROFILES, HERE.sandbox_id, "running"]]  # nothing more queued


def test_a_build_creates_the_default_policy_and_records_its_store(services: FakeServices, lake: Lake) -> None:
    land(services, lake, "b1", [ANN, BOB], completed=NOW - 60_000)
    results = service.build_sandbox(services, HERE.sandbox_id)
    [made] = services.store.policies.values()
    assert (made.org_id, made.is_default, made.identity_graph, made.attribute_merge) == (
        HERE.org_id, True, "pdg", {"type": "timestampOrdered"})
    assert list(results) == [made.id] and results[made.id]["profiles"] == 2
    path = services.settings.profiles_dir / HERE.sandbox_id / made.id
    assert services.store.profile_stores == {made.id: ProfileStoreRecord(
        merge_policy_id=made.id, sandbox_id=HERE.sandbox_id, path=str(path), policy_version=1, built_at=NOW,
        stats=results[made.id])}
    assert service.serving_store(services, HERE, made) == ServingStore(resolve_store(path), ms_to_datetime(NOW), False)
    assert builds_queued(services) == []


def test_a_build_behind_the_data_or_the_policy_is_served_stale_and_rebuilt(services: FakeServices, lake: Lake,
                                                                          clock: list[int]) -> None:
    land(services, lake, "b1", [ANN], completed=NOW - 60_000)
    mp = policy(services)
    service.build_sandbox(services, HERE.sandbox_id)
    built = service.serving_store(services, HERE, mp)
    land(services, lake, "b2", [BOB], completed=NOW + 1_000)  # a batch newer than the build
    stale = service.serving_store(services, HERE, mp)
    assert (stale.path, stale.stale) == (built.path, True)
    assert builds_queued(services) == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]
    clock[0] = NOW + 5_000
    service.build_sandbox(services, HERE.sandbox_id)
    services.store.queue.clear()
    assert service.serving_store(services, HERE, mp).stale is False
    assert services.store.profile_stores["mp-1"].built_at == NOW + 5_000
    newer = policy(services, version=2)  # the policy changed since
    assert service.serving_store(services, HERE, newer).stale is True
    assert builds_queued(services) == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]


def test_streamed_batches_leave_the_build_request_to_the_streamer_until_it_is_overdue(
        services: FakeServices, lake: Lake, clock: list[int]) -> None:
    """Lookups lay streamed records over the build from the log, and the streamer asks for their build every
    OPENSEG_STREAM_BUILD_SECONDS (15 s here): a read asks only for a batch ingested as a batch, or once the build
    is twice that old (a streamer that restarted forgot what it had not asked for yet)."""
    land(services, lake, "b1", [ANN], completed=NOW - 60_000)
    mp = policy(services)
    service.build_sandbox(services, HERE.sandbox_id)
    land(services, lake, "s1", [BOB], completed=NOW + 1_000, streamed=True)
    clock[0] = NOW + 29_000
    assert service.serving_store(services, HERE, mp).stale is True
    assert builds_queued(services) == []
    clock[0] = NOW + 31_000
    assert service.serving_store(services, HERE, mp).stale is True
    assert builds_queued(services) == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]
    services.store.queue.clear()
    clock[0] = NOW + 40_000
    service.build_sandbox(services, HERE.sandbox_id)
    land(services, lake, "s2", [BOB], completed=NOW + 41_000, streamed=True)
    land(services, lake, "b2", [ANN], completed=NOW + 42_000)  # an uploaded batch: asked for at once
    clock[0] = NOW + 43_000
    assert service.serving_store(services, HERE, mp).stale is True
    assert builds_queued(services) == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]


def test_an_unchanged_rebuild_keeps_the_record(services: FakeServices, lake: Lake, clock: list[int]) -> None:
    land(services, lake, "b1", [ANN], completed=NOW - 60_000)
    policy(services)
    service.build_sandbox(services, HERE.sandbox_id)
    first = services.store.profile_stores["mp-1"]
    clock[0] = NOW + 5_000
    again = service.build_sandbox(services, HERE.sandbox_id)
    assert again["mp-1"]["refresh"] == "unchanged"
    assert services.store.profile_stores["mp-1"] == first  # built_at and stats stay those of the last real build


def test_a_sandbox_without_data_serves_an_empty_store_only_when_asked(services: FakeServices) -> None:
    mp = policy(services)
    with pytest.raises(ProfileStoreNotBuilt) as none:
        service.serving_store(services, HERE, mp)
    assert none.value.has_data is False
    services.store.queue.clear()
    empty = service.serving_store(services, HERE, mp, build_empty=True)
    assert (empty.stale, empty.built_at) == (False, ms_to_datetime(NOW))
    assert pq.ParquetFile(empty.path / "profiles.parquet").metadata.num_rows == 0
    assert builds_queued(services) == []


def test_a_reader_opens_the_default_policy_and_knows_nobody_without_data(services: FakeServices) -> None:
    reader = entities.open_reader(services, HERE)
    [made] = services.store.policies.values()  # created on first need, and kept
    assert (reader.policy, reader.build, reader.membership_path) == (made, None, None)
    with pytest.raises(entities.ProfileNotFound) as unknown:
        entities.find(reader, "email", "ann@x")
    assert (unknown.value.status, unknown.value.build) == (404, None)


def test_a_reader_refuses_another_sandboxs_policy(services: FakeServices) -> None:
    elsewhere = policy(services, "mp-dev", scope=Scope(sandbox_id="sandbox-dev"))
    with pytest.raises(NotFound) as refused:
        entities.open_reader(services, HERE, elsewhere.id)
    assert refused.value.status == 404 and "mp-dev" in refused.value.detail
    assert list(services.store.policies) == ["mp-dev"]  # no default policy created on the way


def test_erasure_rewrites_the_files_records_their_sizes_and_queues_a_build(services: FakeServices,
                                                                           lake: Lake) -> None:
    land(services, lake, "b1", [ANN, BOB], completed=NOW - 60_000)
    day = datetime(2024, 1, 2)
    land(services, lake, "b2", [{"_id": f"e{i}", "timestamp": day + timedelta(hours=i), "eventType": "web",
                                 "identityMap": ids(("ECID", "1"))} for i in range(3)],
         completed=NOW - 30_000, kind="event")
    mp = policy(services)
    service.build_sandbox(services, HERE.sandbox_id)
    located = entities.locate(services, HERE, "ECID", "1")
    assert (located.policy, located.profile_id) == (mp, "ecid:1")
    removed = entities.erase(services, HERE, located)
    assert removed == {"fragments": 1, "events": 3, "files": 2}
    profiles_file, events_file = (b.files[0].path for b in services.store.batches.values())
    assert services.store.file_sizes == {profiles_file: (1, Path(profiles_file).stat().st_size),
                                         events_file: (0, Path(events_file).stat().st_size)}
    assert pq.read_table(profiles_file).num_rows == 1
    assert builds_queued(services) == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]


# ------------------------------------------------------------------------------------------ merge policies


def test_a_new_default_policy_takes_over_and_queues_one_build(services: FakeServices) -> None:
    services.store.dataset_sandboxes["ds-crm"] = HERE.sandbox_id
    made = policies.create_policy(services.uow(), HERE, {
        "name": " CRM first ", "identityGraph": {"type": "none"}, "default": True,
        "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": ["ds-crm"]}}})
    assert (made.name, made.version, made.is_default, made.attribute_merge) == (
        "CRM first", 1, True, {"type": "dataSetPrecedence", "data": {"order": ["ds-crm"]}})
    first = next(p for p in services.store.policies.values() if p.id != made.id)
    assert (first.name, first.is_default, first.updated) == ("Default timestamp-ordered", False, NOW)
    assert services.store.queue == [[BUILD_PROFILES, HERE.sandbox_id, "queued"]]
    page, total = policies.list_policies(services.uow(), HERE, start=0, limit=10, default=True)
    assert ([p.id for p in page], total) == ([made.id], 1)
    with pytest.raises(BadRequest, match="make another one default instead"):
        policies.replace_policy(services.uow(), HERE, made.id, {
            "name": "x", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}})
    assert services.store.policies[made.id] == made  # rolled back


def test_a_policy_names_only_datasets_of_its_sandbox(services: FakeServices) -> None:
    services.store.dataset_sandboxes.update({"ds-crm": HERE.sandbox_id, "ds-dev": "sandbox-dev"})
    with pytest.raises(BadRequest, match="datasets that do not exist: ds-dev") as raised:
        policies.create_policy(services.uow(), HERE, {
            "name": "p", "identityGraph": {"type": "pdg"},
            "attributeMerge": {"type": "dataSetPrecedence", "order": ["ds-crm", "ds-dev"]}})
    assert raised.value.field == "attributeMerge.data.order"
    assert services.store.policies == {} and services.store.queue == []  # nothing committed


def test_a_policy_in_use_or_default_is_not_deleted(services: FakeServices) -> None:
    default = policy(services, "mp-default")
    other = policies.create_policy(services.uow(), HERE, {
        "name": "p", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}})
    services.store.policy_users.update({"seg-b": other.id, "seg-a": other.id})
    with pytest.raises(Conflict, match="used by segment definitions: seg-a, seg-b") as raised:
        policies.delete_policy(services.uow(), HERE, other.id)
    assert raised.value.report == {"segmentDefinitions": ["seg-a", "seg-b"]}
    with pytest.raises(Conflict, match="is the sandbox's default"):
        policies.delete_policy(services.uow(), HERE, default.id)
    services.store.policy_users.clear()
    policies.delete_policy(services.uow(), HERE, other.id)
    assert list(services.store.policies) == [default.id]
    with pytest.raises(NotFound):
        policies.read_policy(services.uow(), Scope(sandbox_id="sandbox-dev"), default.id)


def _files(build: Path) -> dict[str, int]:
    """Each file of a build (but its manifest) by its path in the build, as the inode it is."""
    return {str(f.relative_to(build)): f.stat().st_ino for f in sorted(build.rglob("*"))
            if f.is_file() and f.name != "manifest.json"}


def _manifest(build: Path) -> dict[str, Any]:
    import json

    return dict(json.loads((build / "manifest.json").read_text()))


def test_policies_with_the_same_rules_share_one_build(services: FakeServices, lake: Lake, clock: list[int],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The sandbox's default policy and an edge policy with its rules: one build, whose files the second store
    links; each manifest and record names its own policy; a refresh is shared the same way; a policy with
    other rules builds its own store."""
    from openseg.profiles import refresh
    from openseg.profiles.lookup import get_profile

    land(services, lake, "b1", [ANN], completed=NOW - 60_000)
    policy(services, "mp-1")
    edge = policy(services, "mp-2", version=3)
    own = replace(policy(services, "mp-3"), identity_graph="none")
    services.store.policies[own.id] = own
    refreshed: list[str] = []

    def counted(sources: Any, spec: Any, path: Path, **options: Any) -> Any:
        refreshed.append(spec.id)
        return refresh.refresh_profile_store(sources, spec, path, **options)

    monkeypatch.setattr(service, "refresh_profile_store", counted)

    first = service.build_sandbox(services, HERE.sandbox_id)
    assert refreshed == ["mp-1", "mp-3"] and list(first) == ["mp-1", "mp-2", "mp-3"]
    stores = {p: resolve_store(services.settings.profiles_dir / HERE.sandbox_id / p) for p in first}
    assert _files(stores["mp-2"]) == _files(stores["mp-1"]) and stores["mp-2"] != stores["mp-1"]
    assert set(_files(stores["mp-3"]).values()).isdisjoint(_files(stores["mp-1"]).values())
    assert _manifest(stores["mp-2"]) == {**_manifest(stores["mp-1"]), "policy": edge.spec().to_dict()}
    assert first["mp-2"] == {**first["mp-1"], "sharedWith": "mp-1"} and first["mp-2"]["refresh"] == "full"
    assert services.store.profile_stores["mp-2"] == ProfileStoreRecord(
        merge_policy_id="mp-2", sandbox_id=HERE.sandbox_id, path=str(services.settings.profiles_dir / HERE.sandbox_id
                                                                     / "mp-2"),
        policy_version=3, built_at=NOW, stats=first["mp-2"])
    found = {p: get_profile(stores[p], "email", "ann@x", engine=ENGINE) for p in ("mp-1", "mp-2")}
    assert found["mp-2"] == found["mp-1"] and found["mp-1"]["homeAddress"] == {"country": "US"}

    clock[0] = NOW + 5_000
    land(services, lake, "b2", [BOB], completed=NOW + 1_000)
    refreshed.clear()
    second = service.build_sandbox(services, HERE.sandbox_id)
    assert refreshed == ["mp-1", "mp-3"]
    assert (second["mp-1"]["refresh"], second["mp-2"]["refresh"]) == ("incremental", "incremental")
    again = {p: resolve_store(services.settings.profiles_dir / HERE.sandbox_id / p) for p in second}
    assert _files(again["mp-2"]) == _files(again["mp-1"]) and again["mp-2"] != stores["mp-2"]
    assert services.store.profile_stores["mp-2"].built_at == NOW + 5_000

    clock[0] = NOW + 9_000
    unchanged = service.build_sandbox(services, HERE.sandbox_id)
    assert [unchanged[p]["refresh"] for p in unchanged] == ["unchanged"] * 3
    assert resolve_store(services.settings.profiles_dir / HERE.sandbox_id / "mp-2") == again["mp-2"]
    assert services.store.profile_stores["mp-2"].built_at == NOW + 5_000
