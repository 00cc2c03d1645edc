"""Streaming segmentation end to end: a streamed message changes a continuous segment's membership, which
``/access/entities`` and the membership history show without any segment job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from openseg.catalog.streaming import CatalogLakeSink
from openseg.container import Services
from openseg.profiles.keys import identity_key
from openseg.profiles.overlay import Part
from openseg.streaming.flusher import Streamer, flush
from openseg.streaming.segmenter import MICRO_BATCH, StreamSegmenter
from openseg.streaming_target import StoresSegmentationTarget
from tests.api.flows import create_dataset, person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet, envelope

DEFINITIONS = "/data/core/ups/segment/definitions"
PROFILE_SCHEMA = "https://ns.adobe.com/xdm/context/profile"
T0 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
RECENT_US_VIEWER = ('homeAddress.country = "US" and xEvent[eventType = "web.webpagedetails.pageViews" and '
                    "timestamp occurs <= 1 hours before now]")


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


def define(client: TestClient, org: Org, name: str, pql: str) -> dict[str, Any]:
    response = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": name, "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
    assert response.status_code == 200, response.text
    return dict(response.json())


def post(client: TestClient, inlet: dict[str, Any], record: dict[str, Any], schema: str = EVENT_SCHEMA) -> None:
    response = client.post(f"/collection/{inlet['auth']['params']['inletId']}", json=envelope(record, schema=schema))
    assert response.status_code == 200, response.text


def view(i: int, profile: int, at: dt.datetime) -> dict[str, Any]:
    return {"_id": f"view-{i}", "timestamp": at.isoformat().replace("+00:00", "Z"),
            "eventType": "web.webpagedetails.pageViews",
            "identityMap": {"email": [{"id": f"p{profile}@example.com", "primary": True}]}}


def ups(client: TestClient, org: Org, email: str) -> dict[str, Any]:
    response = client.get("/data/core/ups/access/entities", headers=org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "email"})
    assert response.status_code == 200, response.text
    (body,) = response.json().values()
    return dict((body["entity"].get("segmentMembership") or {}).get("ups") or {})


def history(client: TestClient, org: Org, email: str) -> list[dict[str, Any]]:
    response = client.get("/data/core/ups/access/membership-history", headers=org.headers(),
                          params={"entityId": email, "entityIdNS": "email"})
    assert response.status_code == 200, response.text
    return list(response.json()["history"])


def streamer(services: Services, clock: Clock, max_records: int = MICRO_BATCH) -> Streamer:
    stream_log = services.stream_log()
    segmenter = StreamSegmenter(stream_log, StoresSegmentationTarget(services), clock, max_records=max_records)
    return Streamer(stream_log, CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock"),
                    segmenter=segmenter)


def test_a_streamed_event_and_fragment_move_a_continuous_segment_without_a_job(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(1), person(3), person(4)])  # p1, p3 in the US
    segment = define(client, org, "recent US viewers", RECENT_US_VIEWER)
    assert segment["evaluationInfo"]["continuous"] == {"enabled": True}
    # Counts of events are batch-only in AEP: this one would hold p1 too, once a job runs.
    batch_only = define(client, org, "US viewers", 'homeAddress.country = "US" and '
                        'xEvent[eventType = "web.webpagedetails.pageViews"].count() > 0')
    assert batch_only["evaluationInfo"]["continuous"]["enabled"] is False
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    clock = Clock()
    consumers = streamer(services, clock)
    post(client, create_inlet(client, org, events), view(1, 1, T0 - dt.timedelta(minutes=5)))
    post(client, create_inlet(client, org, events), view(2, 4, T0 - dt.timedelta(minutes=5)))  # not in the US
    assert consumers.segmenter is not None
    assert consumers.segmenter.run_until_idle() == 2
    assert ups(client, org, "p1@example.com") == {
        segment["id"]: {"status": "realized", "lastQualificationTime": "2026-12-02T10:00:00Z"}}
    assert ups(client, org, "p3@example.com") == {}  # no view
    assert ups(client, org, "p4@example.com") == {}  # not in the US
    (entered,) = history(client, org, "p1@example.com")
    assert entered["segmentId"] == segment["id"] and entered["enteredAt"].startswith("2026-12-02T10:00:00")
    assert entered["exitedAt"] is None
    # A profile fragment moving p1 to France exits it at once, over the build's row and the streamed view.
    clock.now = T0 + dt.timedelta(minutes=2)
    post(client, create_inlet(client, org, people), person(1, homeAddress={"country": "FR"}), schema=PROFILE_SCHEMA)
    assert consumers.segmenter.run_until_idle() == 1
    assert ups(client, org, "p1@example.com") == {
        segment["id"]: {"status": "exited", "lastQualificationTime": "2026-12-02T10:02:00Z"}}
    (stay,) = history(client, org, "p1@example.com")
    assert stay["exitedAt"].startswith("2026-12-02T10:02:00")


def test_the_log_keeps_what_streaming_segmentation_has_not_read(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1)])
    define(client, org, "recent US viewers", RECENT_US_VIEWER)
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, events)
    post(client, inlet, view(1, 1, T0))
    post(client, inlet, view(2, 1, T0))
    consumers = streamer(services, Clock())
    assert consumers.segmenter is not None
    consumers.segmenter.max_records = 1
    consumers.segmenter.run_once()  # streaming segmentation has read one message of two ...
    assert flush(services.stream_log(), consumers.sink, others=(consumers.segmenter.offset,)).records == 2
    drain()  # ... the lake has both, and a build holds them ...
    assert flush(services.stream_log(), consumers.sink, others=(consumers.segmenter.offset,)).records == 0
    # ... so the log lets go of message 1 but keeps the one it has not read, for the restarted consumer.
    assert [m.seq for m in services.stream_log().read(0, 10)] == [2]
    restarted = streamer(services, Clock())
    assert restarted.segmenter is not None and restarted.segmenter.offset == 1
    assert restarted.run_until_idle() == 0  # nothing new for the lake; the segmenter reads message 2 ...
    assert restarted.segmenter.offset == 2
    assert services.stream_log().read(0, 10) == []  # ... and then it leaves the log


def test_a_job_after_the_flush_finds_the_members_streaming_found(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(i) for i in range(6)])  # odd i in the US
    gold = define(client, org, "US gold", 'homeAddress.country = "US" and loyalty.tier = "gold"')
    assert gold["evaluationInfo"]["continuous"] == {"enabled": True}
    inlet = create_inlet(client, org, people)
    for i in (1, 2, 3):  # 1 and 3 enter; 2 is gold but in France
        post(client, inlet, person(i, loyalty={"points": 5, "tier": "gold"}), schema=PROFILE_SCHEMA)
    post(client, inlet, person(7, loyalty={"tier": "gold"}), schema=PROFILE_SCHEMA)  # a profile the build lacks
    consumers = streamer(services, Clock())
    assert consumers.run_until_idle() == 4
    streamed = {f"p{i}@example.com" for i in range(6) if gold["id"] in ups(client, org, f"p{i}@example.com")}
    assert streamed == {"p1@example.com", "p3@example.com"}
    drain()  # the flushed batch refreshes the profile store
    assert ups(client, org, "p7@example.com") == {
        gold["id"]: {"status": "realized", "lastQualificationTime": "2026-12-02T10:00:00Z"}}
    created = client.post("/data/core/ups/segment/jobs", headers=org.headers(), json=[{"segmentId": gold["id"]}])
    assert created.status_code == 200, created.text
    drain()
    job = client.get(f"/data/core/ups/segment/jobs/{created.json()['id']}", headers=org.headers()).json()
    assert job["status"] == "SUCCEEDED", job
    members = client.get(f"{DEFINITIONS}/{gold['id']}/members", headers=org.headers()).json()["members"]
    assert sorted(m["entityId"] for m in members) == ["email:p1@example.com", "email:p3@example.com",
                                                      "email:p7@example.com"]
    # The job saw the streamed entries as the previous membership: no second entry for anyone.
    assert job["metrics"]["segmentedProfileByStatusCounter"][gold["id"]] == {"realized": 0, "existing": 3,
                                                                              "exited": 0}


def test_an_edit_is_evaluated_at_its_new_version_and_one_made_batch_only_stops_streaming(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(1), person(2)])  # p1 in the US, p2 in France
    segment = define(client, org, "in the US", 'homeAddress.country = "US"')
    inlet = create_inlet(client, org, people)
    clock = Clock()
    consumers = streamer(services, clock)
    post(client, inlet, person(1, loyalty={"points": 1}), schema=PROFILE_SCHEMA)
    post(client, inlet, person(2, loyalty={"points": 1}), schema=PROFILE_SCHEMA)
    assert consumers.segmenter is not None and consumers.segmenter.run_until_idle() == 2
    assert segment["id"] in ups(client, org, "p1@example.com") and ups(client, org, "p2@example.com") == {}
    path = f"{DEFINITIONS}/{segment['id']}"
    edited = client.patch(path, headers=org.headers(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'}})
    assert edited.status_code == 200, edited.text
    clock.now = T0 + dt.timedelta(minutes=1)
    post(client, inlet, person(1, loyalty={"points": 2}), schema=PROFILE_SCHEMA)
    post(client, inlet, person(2, loyalty={"points": 2}), schema=PROFILE_SCHEMA)
    assert consumers.segmenter.run_until_idle() == 2  # the same consumer: the new version is compiled
    assert ups(client, org, "p1@example.com")[segment["id"]]["status"] == "exited"
    assert ups(client, org, "p2@example.com")[segment["id"]]["status"] == "realized"
    batch_only = client.patch(path, headers=org.headers(), json={"expression": {
        "type": "PQL", "format": "pql/text", "value": 'xEvent[eventType = "x"].count() = 0'}})
    assert batch_only.status_code == 200, batch_only.text
    assert batch_only.json()["evaluationInfo"]["continuous"]["enabled"] is False
    clock.now = T0 + dt.timedelta(minutes=2)
    post(client, inlet, person(1, loyalty={"points": 3}), schema=PROFILE_SCHEMA)
    assert consumers.segmenter.run_until_idle() == 1
    # Everyone qualifies for the batch-only expression, but nothing streams it: p1 stays exited.
    assert ups(client, org, "p1@example.com")[segment["id"]] == {
        "status": "exited", "lastQualificationTime": "2026-12-02T10:01:00Z"}


def test_a_micro_batch_resolves_its_identities_in_one_read_as_one_at_a_time_would(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1), person(2, identityMap={
        "email": [{"id": "p2@example.com", "primary": True}], "crmid": [{"id": "C2"}]})])
    segment = define(client, org, "recent US viewers", RECENT_US_VIEWER)
    sandbox_id, policy_id = segment["sandbox"]["sandboxId"], segment["mergePolicyId"]
    target = StoresSegmentationTarget(services)
    pairs = [("email", "p1@example.com"), ("EMAIL", "p2@example.com"), ("crmid", "C2"), ("email", "nobody@example.com"),
             ("crmid", "p1@example.com")]
    with target.pinned():
        together = target.parts(sandbox_id, policy_id, pairs)
        alone = {identity_key(*pair): target.part(sandbox_id, policy_id, *pair) for pair in pairs}
    assert together == alone
    assert together[identity_key("email", "p1@example.com")] == Part("email:p1@example.com",
                                                                       (("email", "p1@example.com"),))
    both = Part("crmid:C2", (("crmid", "C2"), ("email", "p2@example.com")))
    assert (together[identity_key("EMAIL", "p2@example.com")], together[identity_key("crmid", "C2")]) == (both, both)
    assert together[identity_key("email", "nobody@example.com")] is None
    assert together[identity_key("crmid", "p1@example.com")] is None
