"""A streamed record linking two built profiles: streaming segmentation evaluates the merged profile (both
profiles' attributes and events) under the id the next build gives it, the id merged away exits, profile
access shows the merged profile at once, and a job after the flush and the refresh agrees (no drift)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet
from tests.streaming.test_drift import US_GOLD, job_at, members
from tests.streaming.test_overlay import events, profile
from tests.streaming.test_streaming_segmentation import (
    PROFILE_SCHEMA,
    RECENT_US_VIEWER,
    T0,
    Clock,
    define,
    post,
    streamer,
    view,
)

ECID = {"ecid": [{"id": "E1", "primary": True}]}


def test_a_streamed_link_of_two_built_profiles_evaluates_the_merged_profile_and_batch_agrees(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Two built profiles: p1 by e-mail (in the US), and a gold member known only by an ECID, who viewed a page.
    viewed = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    upload_batch(client, org.headers(), viewed, {"events.json": json_lines([
        {**view(1, 1, T0 - dt.timedelta(minutes=10)), "identityMap": ECID}])})
    people = load_people(client, org, drain, [person(1), {"identityMap": ECID, "loyalty": {"tier": "gold"}}])
    segments = {name: define(client, org, name, pql)["id"] for name, pql in (
        ("in the US", 'homeAddress.country = "US"'), ("gold", 'loyalty.tier = "gold"'), ("US gold", US_GOLD),
        ("recent US viewers", RECENT_US_VIEWER))}
    us, gold, us_gold, viewers = segments.values()
    job_at(client, org, drain, monkeypatch, T0, *segments.values())  # the baseline
    assert {s: members(client, org, s) for s in segments.values()} == {
        us: ["email:p1@example.com"], gold: ["ecid:E1"], us_gold: [], viewers: []}

    # One streamed fragment carries both identities: the two profiles are one, keyed by its smallest identity.
    clock = Clock()
    clock.now = T0 + dt.timedelta(minutes=5)
    post(client, create_inlet(client, org, people),
         person(1, identityMap={"email": [{"id": "p1@example.com", "primary": True}], "ecid": [{"id": "E1"}]}),
         schema=PROFILE_SCHEMA)
    merged = profile(client, org, "email", "p1@example.com")  # profile access shows it before anything ran
    assert merged["entityId"] == "ecid:E1"
    assert merged["identityGraph"] == ["ecid:E1", "email:p1@example.com"]
    assert merged["entity"]["loyalty"] == {"points": 10, "tier": "gold"}
    assert merged["entity"]["homeAddress"] == {"country": "US", "city": "City1"}
    assert [c["entityId"] for c in events(client, org, "email", "p1@example.com")["children"]] == ["view-1"]
    consumers = streamer(services, clock)
    assert consumers.segmenter is not None and consumers.segmenter.run_until_idle() == 1
    at = "2026-12-02T10:05:00Z"
    assert {s: members(client, org, s) for s in segments.values()} == {
        us: ["ecid:E1"], gold: ["ecid:E1"], us_gold: ["ecid:E1"], viewers: ["ecid:E1"]}
    assert profile(client, org, "ecid", "E1")["entity"]["segmentMembership"]["ups"] == {
        us: {"status": "realized", "lastQualificationTime": at},
        gold: {"status": "existing", "lastQualificationTime": at},
        us_gold: {"status": "realized", "lastQualificationTime": at},
        viewers: {"status": "realized", "lastQualificationTime": at}}

    consumers.run_until_idle()  # flushed
    drain()  # and refreshed: the build makes one profile of them, keyed ecid:E1
    refreshed = profile(client, org, "email", "p1@example.com")
    assert refreshed["entityId"] == "ecid:E1"
    assert {k: v for k, v in refreshed["entity"].items() if k != "segmentMembership"} == {
        k: v for k, v in merged["entity"].items() if k != "segmentMembership"}
    job = job_at(client, org, drain, monkeypatch, clock.now, *segments.values())
    assert job["metrics"]["openseg:streamingDrift"] == {
        s: {"onlyBatch": 0, "onlyStream": 0, "baseline": False} for s in segments.values()}
    # Streaming already moved everyone: the e-mail profile's exit from "in the US" is not made again.
    assert job["metrics"]["segmentedProfileByStatusCounter"][us] == {"realized": 0, "existing": 1, "exited": 0}
    assert {s: members(client, org, s) for s in segments.values()} == {
        us: ["ecid:E1"], gold: ["ecid:E1"], us_gold: ["ecid:E1"], viewers: ["ecid:E1"]}
