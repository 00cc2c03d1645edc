"""Batch and streaming agree: after a baseline job, streaming keeps every continuous segment up to date, so
a job over the same data at the same time finds the members streaming found, and its
``metrics["openseg:streamingDrift"]`` is all zeros; data that reached the store behind streaming's back
shows up as drift."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.segmentation import membership
from openseg.streaming.segmenter import MICRO_BATCH
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet
from tests.streaming.test_streaming_segmentation import (
    DEFINITIONS,
    PROFILE_SCHEMA,
    RECENT_US_VIEWER,
    T0,
    Clock,
    define,
    post,
    streamer,
    view,
)

US_GOLD = 'homeAddress.country = "US" and loyalty.tier = "gold"'
RECENT_BUYER = ('xEvent[eventType = "commerce.purchases" and timestamp occurs <= 2 hours before now]')
JOBS = "/data/core/ups/segment/jobs"


def at_ms(instant: dt.datetime) -> int:
    return int(instant.timestamp() * 1000)


def purchase(i: int, profile: int, at: dt.datetime) -> dict[str, Any]:
    return {**view(i, profile, at), "_id": f"buy-{i}", "eventType": "commerce.purchases"}


def members(client: TestClient, org: Org, segment_id: str) -> list[str]:
    response = client.get(f"{DEFINITIONS}/{segment_id}/members", headers=org.headers())
    assert response.status_code == 200, response.text
    return sorted(m["entityId"] for m in response.json()["members"])


def job_at(client: TestClient, org: Org, drain: Callable[[], int], monkeypatch: pytest.MonkeyPatch,
           at: dt.datetime, *segment_ids: str) -> dict[str, Any]:
    """Run a segment job whose evaluation time is ``at``."""
    monkeypatch.setattr("openseg.segmentation.job_execution.now_ms", lambda: at_ms(at))
    created = client.post(JOBS, headers=org.headers(), json=[{"segmentId": s} for s in segment_ids])
    assert created.status_code == 200, created.text
    drain()
    job = client.get(f"{JOBS}/{created.json()['id']}", headers=org.headers()).json()
    assert job["status"] == "SUCCEEDED", job
    return dict(job)


def emails(*profiles: int) -> list[str]:
    return sorted(f"email:p{i}@example.com" for i in profiles)


@dataclass(frozen=True)
class World:
    segments: dict[str, str]
    profiles: str
    events: str


@pytest.fixture
def world(client: TestClient, org: Org, drain: Callable[[], int]) -> World:
    """People p0..p9 (odd ones in the US; p1 and p3 gold) and their events, ingested by batch; three
    continuous segments."""
    people = [person(i, loyalty={"points": i, "tier": "gold" if i in (1, 3) else "silver"}) for i in range(10)]
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    upload_batch(client, org.headers(), events, {"events.json": json_lines([
        view(1, 5, T0 - dt.timedelta(minutes=20)), purchase(2, 2, T0 - dt.timedelta(minutes=30)),
        view(3, 4, T0 - dt.timedelta(minutes=10))])})  # p4 is in France
    profiles = load_people(client, org, drain, people)
    ids = {}
    for name, pql in (("US gold", US_GOLD), ("recent US viewers", RECENT_US_VIEWER), ("recent buyers", RECENT_BUYER)):
        definition = define(client, org, name, pql)
        assert definition["evaluationInfo"]["continuous"] == {"enabled": True}, name
        ids[name] = definition["id"]
    return World(ids, profiles, events)


@pytest.mark.parametrize("micro_batch", [MICRO_BATCH, 1], ids=["one micro-batch", "compacted micro-batches"])
def test_after_a_baseline_a_job_finds_what_streaming_found_and_reports_no_drift(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch, world: World, micro_batch: int) -> None:
    # One message per micro-batch writes a change file each, and two files of a tier merge into one: the job
    # folds merged files (and the history the members read holds each write once).
    monkeypatch.setattr("openseg.segmentation.membership.changes.FAN_IN", 2)
    segments = world.segments
    gold, viewers, buyers = segments["US gold"], segments["recent US viewers"], segments["recent buyers"]
    baseline = job_at(client, org, drain, monkeypatch, T0, *segments.values())
    # The first job is every segment's baseline: what it finds, streaming had not seen.
    assert baseline["metrics"]["openseg:streamingDrift"] == {
        gold: {"onlyBatch": 2, "onlyStream": 0, "baseline": True},
        viewers: {"onlyBatch": 1, "onlyStream": 0, "baseline": True},
        buyers: {"onlyBatch": 1, "onlyStream": 0, "baseline": True}}
    # The rest of the data arrives by streaming: fragments and events, for known profiles and a new one.
    profiles, events = create_inlet(client, org, world.profiles), create_inlet(client, org, world.events)
    clock = Clock()
    clock.now = T0 + dt.timedelta(minutes=10)
    post(client, profiles, person(5, loyalty={"points": 5, "tier": "gold"}), schema=PROFILE_SCHEMA)  # enters gold
    post(client, profiles, person(3, homeAddress={"country": "FR"}), schema=PROFILE_SCHEMA)  # leaves gold
    post(client, profiles, person(11, loyalty={"points": 1, "tier": "gold"}), schema=PROFILE_SCHEMA)  # new, US gold
    post(client, events, view(10, 7, T0 + dt.timedelta(minutes=5)))  # p7 becomes a recent US viewer
    post(client, events, view(11, 11, T0 + dt.timedelta(minutes=6)))  # so does the new p11
    post(client, events, purchase(12, 6, T0 + dt.timedelta(minutes=8)))  # p6 a recent buyer
    post(client, events, purchase(13, 5, T0 + dt.timedelta(minutes=9)))  # and p5
    consumers = streamer(services, clock, micro_batch)
    assert consumers.run_until_idle() == 7  # segmented, then flushed to the lake
    streamed = {segment_id: members(client, org, segment_id) for segment_id in segments.values()}
    assert streamed == {gold: emails(1, 5, 11), viewers: emails(5, 7, 11), buyers: emails(2, 5, 6)}
    drain()  # the flushed batches refresh the profile store
    # Seven micro-batches of one message: 1-4, 5-6 and 7 (one micro-batch: one file).
    [store] = membership.all_stores(services.settings.home)
    assert len(store.changes(None)) == (1 if micro_batch == MICRO_BATCH else 3)
    job = job_at(client, org, drain, monkeypatch, clock.now, *segments.values())
    assert {segment_id: members(client, org, segment_id) for segment_id in segments.values()} == streamed
    assert job["metrics"]["openseg:streamingDrift"] == {
        segment_id: {"onlyBatch": 0, "onlyStream": 0, "baseline": False} for segment_id in segments.values()}
    assert {s: c["realized"] + c["exited"] for s, c in job["metrics"]["segmentedProfileByStatusCounter"].items()} \
        == dict.fromkeys(segments.values(), 0)


def test_data_changed_behind_streamings_back_shows_as_drift(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    segments = world.segments
    gold, viewers, buyers = segments["US gold"], segments["recent US viewers"], segments["recent buyers"]
    job_at(client, org, drain, monkeypatch, T0, *segments.values())
    # A batch upload (which streaming segmentation does not see, as in AEP) makes p5 and p7 gold and moves p1
    # to France; a batch-ingested purchase makes p8 a recent buyer.
    upload_batch(client, org.headers(), world.profiles, {"changes.json": json_lines([
        person(5, loyalty={"tier": "gold"}), person(7, loyalty={"tier": "gold"}), person(1, homeAddress={"country": "FR"})])})
    events = create_dataset(client, org.headers(), "more events", EVENT_SCHEMA)
    upload_batch(client, org.headers(), events, {"events.json": json_lines([purchase(20, 8, T0)])})
    drain()
    job = job_at(client, org, drain, monkeypatch, T0 + dt.timedelta(minutes=1), *segments.values())
    assert job["metrics"]["openseg:streamingDrift"] == {
        gold: {"onlyBatch": 2, "onlyStream": 1, "baseline": False},
        viewers: {"onlyBatch": 0, "onlyStream": 0, "baseline": False},
        buyers: {"onlyBatch": 1, "onlyStream": 0, "baseline": False}}
    assert members(client, org, gold) == emails(3, 5, 7)


def test_a_job_without_continuous_segments_reports_an_empty_drift(
        client: TestClient, org: Org, drain: Callable[[], int], monkeypatch: pytest.MonkeyPatch) -> None:
    load_people(client, org, drain, [person(1), person(2)])
    counted = define(client, org, "viewed once", 'xEvent[eventType = "web.webpagedetails.pageViews"].count() > 0')
    assert counted["evaluationInfo"]["continuous"]["enabled"] is False
    assert job_at(client, org, drain, monkeypatch, T0, counted["id"])["metrics"]["openseg:streamingDrift"] == {}
