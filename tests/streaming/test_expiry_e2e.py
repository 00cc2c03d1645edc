"""Time-window expiry on the real stores: a streamed member of "viewed in the last hour" exits when its hour
passes, with no new message, through a restart of the streamer (the due times are in
``$OPENSEG_HOME/stream/due.sqlite``); ``/access/entities`` and the history show the exit, and a job at the
same time agrees (no drift)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from openseg.catalog.streaming import CatalogLakeSink
from openseg.container import Services
from openseg.store.stream_due import SqliteDueIndex
from openseg.streaming.flusher import Streamer
from openseg.streaming.segmenter import StreamSegmenter
from openseg.streaming_target import StoresSegmentationTarget
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet
from tests.streaming.test_drift import emails, job_at, members
from tests.streaming.test_streaming_segmentation import RECENT_US_VIEWER, T0, Clock, define, history, post, ups, view


def durable_streamer(services: Services, clock: Clock) -> Streamer:
    """The streamer as ``bootstrap.streamer`` wires it, with an injected clock."""
    stream_log = services.stream_log()
    due = SqliteDueIndex(services.settings.home / "stream" / "due.sqlite")
    segmenter = StreamSegmenter(stream_log, StoresSegmentationTarget(services), clock, due=due)
    return Streamer(stream_log, CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock"),
                    segmenter=segmenter)


def test_a_streamed_member_exits_when_its_window_passes_through_a_restart_and_a_job_agrees(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    load_people(client, org, drain, [person(i) for i in range(6)])  # odd i in the US
    segment = define(client, org, "recent US viewers", RECENT_US_VIEWER)["id"]
    assert job_at(client, org, drain, monkeypatch, T0 - dt.timedelta(hours=2), segment)  # the baseline: nobody
    inlet = create_inlet(client, org, create_dataset(client, org.headers(), "events", EVENT_SCHEMA))
    post(client, inlet, view(1, 1, T0 - dt.timedelta(minutes=5)))
    post(client, inlet, view(2, 3, T0 - dt.timedelta(minutes=50)))
    clock = Clock()
    assert durable_streamer(services, clock).run_until_idle() == 2  # segmented, then flushed
    drain()  # the profile store takes the flushed events
    assert members(client, org, segment) == emails(1, 3)
    # A new streamer process (the same files): p3's view leaves the hour at T0 + 10 min, p1's at T0 + 55 min.
    clock.now = T0 + dt.timedelta(minutes=10, seconds=2)
    restarted = durable_streamer(services, clock)
    assert restarted.segmenter is not None
    assert restarted.segmenter.sweep().pairs == 1
    assert ups(client, org, "p3@example.com") == {
        segment: {"status": "exited", "lastQualificationTime": "2026-12-02T10:10:02Z"}}
    (stay,) = history(client, org, "p3@example.com")
    assert stay["exitedAt"].startswith("2026-12-02T10:10:02")
    assert ups(client, org, "p1@example.com")[segment]["status"] == "realized"
    job = job_at(client, org, drain, monkeypatch, clock.now, segment)
    assert members(client, org, segment) == emails(1)
    assert job["metrics"]["openseg:streamingDrift"] == {segment: {"onlyBatch": 0, "onlyStream": 0, "baseline": False}}


def test_members_a_job_found_exit_when_their_window_passes(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    upload_batch(client, org.headers(), events, {"events.json": json_lines([
        view(1, 1, T0 - dt.timedelta(minutes=40)), view(2, 3, T0 - dt.timedelta(minutes=10))])})
    load_people(client, org, drain, [person(i) for i in range(6)])
    segment = define(client, org, "recent US viewers", RECENT_US_VIEWER)["id"]
    job_at(client, org, drain, monkeypatch, T0, segment)  # the baseline finds p1 and p3; streaming never saw them
    assert members(client, org, segment) == emails(1, 3)
    clock = Clock()
    consumers = durable_streamer(services, clock)
    assert consumers.segmenter is not None
    # A chunk at a time (the streamer evaluates messages between two), once per published job.
    assert consumers.segmenter.schedule_job_members(limit=1) == 1 and consumers.segmenter.scheduling_members
    assert consumers.segmenter.schedule_job_members(limit=1) == 1
    assert consumers.segmenter.schedule_job_members() == 0 and not consumers.segmenter.scheduling_members
    # A restarted streamer does not evaluate them again (at 1M profiles, 150,000 such members took a minute).
    restarted = durable_streamer(services, clock).segmenter
    assert restarted is not None and restarted.schedule_job_members() == 0 and not restarted.scheduling_members
    clock.now = T0 + dt.timedelta(minutes=21)  # p1's view left the hour at T0 + 20 min
    assert consumers.run_until_idle() == 0
    assert ups(client, org, "p1@example.com") == {
        segment: {"status": "exited", "lastQualificationTime": "2026-12-02T10:21:00Z"}}
    assert members(client, org, segment) == emails(3)
    job = job_at(client, org, drain, monkeypatch, clock.now, segment)
    assert job["metrics"]["openseg:streamingDrift"] == {segment: {"onlyBatch": 0, "onlyStream": 0, "baseline": False}}


def test_a_job_member_whose_window_passed_before_the_streamer_looked_exits_at_once(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    upload_batch(client, org.headers(), events, {"events.json": json_lines([view(1, 1, T0 - dt.timedelta(minutes=40))])})
    load_people(client, org, drain, [person(1)])
    segment = define(client, org, "recent US viewers", RECENT_US_VIEWER)["id"]
    job_at(client, org, drain, monkeypatch, T0, segment)
    clock = Clock()
    clock.now = T0 + dt.timedelta(minutes=25)  # the streamer starts after p1's view left the hour
    assert durable_streamer(services, clock).run_until_idle() == 0
    assert ups(client, org, "p1@example.com") == {
        segment: {"status": "exited", "lastQualificationTime": "2026-12-02T10:25:00Z"}}
