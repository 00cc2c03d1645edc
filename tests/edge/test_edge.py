"""The Edge Network Server API: datastreams, ``/ee/v2/interact`` (edge segmentation of one event's profile,
the event included) and ``/ee/v2/collect`` (events into streaming ingestion), with an injected clock."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import Depends, Request
from fastapi.testclient import TestClient

from openseg.api import edge as routes
from openseg.api.deps import services as services_dependency
from openseg.api.edge import use_edge
from openseg.catalog.streaming import CatalogLakeSink
from openseg.container import Services
from openseg.edge_target import StoresEdgeTarget
from openseg.store.db import Database
from openseg.store.models import SegmentDefinition
from openseg.streaming.edge import Edge
from openseg.streaming.flusher import flush
from openseg.streaming.segmenter import StreamSegmenter
from openseg.streaming_target import StoresSegmentationTarget
from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, create_dataset, json_lines, person, upload_batch
from tests.conftest import Org, make_org
from tests.streaming.inlets import create_inlet, lake_records
from tests.streaming.test_streaming_segmentation import PROFILE_SCHEMA, post, streamer

T0 = dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)
DATASTREAMS = "/data/core/edge/datastreams"
POLICIES = "/data/core/ups/config/mergePolicies"
DEFINITIONS = "/data/core/ups/segment/definitions"
CHECKOUT_NOW = 'xEvent[eventType = "commerce.checkouts" and timestamp occurs <= 1 hours before now]'


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@dataclass
class Edgy:
    """A sandbox ready for the edge: people p0..p3 (odd ones in the US) built under an edge-active policy,
    an events dataset, a datastream, and three definitions of that policy."""

    org: Org
    clock: Clock
    policy: str
    events: str
    datastream: str
    us: str  # profile only: synchronous
    checkout: str  # a checkout within the hour: synchronous and continuous
    counted: str  # two checkouts ever: batch only


def define(client: TestClient, org: Org, name: str, pql: str, policy: str) -> dict[str, Any]:
    response = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": name, "schema": {"name": "_xdm.context.profile"}, "mergePolicyId": policy,
        "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
    assert response.status_code == 200, response.text
    return dict(response.json())


def edge_policy(client: TestClient, org: Org, *, active: bool = True, name: str = "edge") -> str:
    response = client.post(POLICIES, headers=org.headers(), json={
        "name": name, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
        "schema": {"name": "_xdm.context.profile"}, "isActiveOnEdge": active})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


@pytest.fixture
def edgy(client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> Edgy:
    people = create_dataset(client, org.headers())
    events = create_dataset(client, org.headers(), "events", EVENT)
    policy = edge_policy(client, org)
    upload_batch(client, org.headers(), people, {"people.json": json_lines([person(i) for i in range(4)])})
    drain()
    created = client.post(DATASTREAMS, headers=org.headers(), json={"name": "web", "datasetId": events})
    assert created.status_code == 201, created.text
    clock = Clock()
    use_edge(services, Edge(StoresEdgeTarget(services), services.stream_log(), clock))
    us = define(client, org, "US", 'homeAddress.country = "US"', policy)
    checkout = define(client, org, "checked out now", CHECKOUT_NOW, policy)
    counted = define(client, org, "two checkouts", 'xEvent[eventType = "commerce.checkouts"].count() > 1', policy)
    assert [d["evaluationInfo"]["synchronous"]["enabled"] for d in (us, checkout, counted)] == [True, True, False]
    assert checkout["evaluationInfo"]["continuous"] == {"enabled": True}
    return Edgy(org, clock, policy, events, created.json()["id"], us["id"], checkout["id"], counted["id"])


def edge_event(profile: str, event_type: str = "web.webpagedetails.pageViews", *, minutes_ago: int = 5,
               **identities: Any) -> dict[str, Any]:
    """AEP's interact body (``help/server-api/interactive-data-collection.md``) for one profile's event."""
    at = (T0 - dt.timedelta(minutes=minutes_ago)).isoformat().replace("+00:00", "Z")
    identity_map = identities or {"email": [{"id": f"{profile}@example.com", "primary": True}]}
    return {"event": {"xdm": {"identityMap": identity_map, "eventType": event_type,
                              "web": {"webPageDetails": {"URL": "https://alloystore.dev/", "name": "home"}},
                              "timestamp": at},
                      "data": {"prop1": "custom value"}}}


def interact(client: TestClient, edgy: Edgy, body: Any, **params: str) -> Any:
    return client.post("/ee/v2/interact", headers=edgy.org.headers(),
                       params={"dataStreamId": edgy.datastream, "requestId": "req-1", **params}, json=body)


def lookup(*segments: str) -> dict[str, Any]:
    """AEP's answer: one activation:pull handle, one profileLookup payload with these segments."""
    return {"requestId": "req-1", "handle": [{"type": "activation:pull", "eventIndex": 0, "payload": [
        {"type": "profileLookup", "segments": [{"id": s, "namespace": "ups"} for s in sorted(segments)]}]}]}


def test_interact_answers_the_synchronous_segments_the_profile_qualifies_for(client: TestClient, edgy: Edgy) -> None:
    # p1 lives in the US; a page view does not make "checked out now" true.
    response = interact(client, edgy, edge_event("p1"))
    assert response.status_code == 200, response.text
    assert response.json() == lookup(edgy.us)
    # p0 lives in France and qualifies for nothing: a lookup with no segments.
    assert interact(client, edgy, edge_event("p0")).json() == lookup()


def test_the_incoming_event_tips_the_profile_into_an_edge_segment(client: TestClient, edgy: Edgy) -> None:
    assert interact(client, edgy, edge_event("p0")).json() == lookup()
    # This checkout is the only one the store has never seen: it alone makes "checked out now" true.
    assert interact(client, edgy, edge_event("p0", "commerce.checkouts")).json() == lookup(edgy.checkout)
    assert interact(client, edgy, edge_event("p1", "commerce.checkouts")).json() == lookup(edgy.us, edgy.checkout)
    # A checkout two hours ago is outside the window; the batch-only count is never on the edge. (p2: p0's
    # checkout five minutes ago is in the log now, which the edge reads.)
    assert interact(client, edgy, edge_event("p2", "commerce.checkouts", minutes_ago=120)).json() == lookup()
    assert interact(client, edgy, edge_event("p0", minutes_ago=1)).json() == lookup(edgy.checkout)


def test_the_edge_reads_what_was_streamed_a_moment_ago(client: TestClient, services: Services, edgy: Edgy,
                                                       drain: Callable[[], int]) -> None:
    """A fragment acknowledged by /collection and not yet built (not even flushed) counts on the edge, as it does
    in /access/entities; so does a fragment linking the event's identity to a built profile."""
    assert interact(client, edgy, edge_event("p0")).json() == lookup()  # p0 lives in France
    people = client.get("/data/foundation/catalog/dataSets", headers=edgy.org.headers(),
                        params={"name": "people"}).json()
    (people_id,) = people
    inlet = create_inlet(client, edgy.org, people_id)
    post(client, inlet, person(0, homeAddress={"country": "US"}), schema=PROFILE_SCHEMA)
    assert interact(client, edgy, edge_event("p0")).json() == lookup(edgy.us)
    # An ECID the build has never seen, linked by a streamed fragment to p2 (France, now the US too).
    ecid = {"ECID": [{"id": "ecid-2", "primary": True}]}
    assert interact(client, edgy, edge_event("", **ecid)).json() == {"requestId": "req-1", "handle": [
        {"type": "activation:pull", "eventIndex": 0, "payload": []}]}
    post(client, inlet, {"identityMap": {"email": [{"id": "p2@example.com", "primary": True}],
                                         "ECID": [{"id": "ecid-2"}]},
                         "homeAddress": {"country": "US"}}, schema=PROFILE_SCHEMA)
    assert interact(client, edgy, edge_event("", **ecid)).json() == lookup(edgy.us)
    # Once built, the same answers.
    assert streamer(services, edgy.clock).run_until_idle() == 6  # 2 fragments, 4 edge events
    drain()
    assert interact(client, edgy, edge_event("p0")).json() == lookup(edgy.us)
    assert interact(client, edgy, edge_event("", **ecid)).json() == lookup(edgy.us)


def test_an_unknown_profile_gets_an_empty_payload_and_a_request_id(client: TestClient, edgy: Edgy) -> None:
    response = client.post("/ee/v2/interact", headers=edgy.org.headers(), params={"dataStreamId": edgy.datastream},
                           json=edge_event("nobody", "commerce.checkouts"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"requestId", "handle"} and uuid.UUID(body["requestId"]).version == 4
    assert str(uuid.UUID(body["requestId"])) == body["requestId"]
    assert body["handle"] == [{"type": "activation:pull", "eventIndex": 0, "payload": []}]
    again = client.post("/ee/v2/interact", headers=edgy.org.headers(), params={"dataStreamId": edgy.datastream},
                        json=edge_event("nobody", "commerce.checkouts"))
    assert again.json()["requestId"] != body["requestId"]


def test_the_edge_answer_is_the_membership_the_streamer_writes(client: TestClient, services: Services,
                                                               edgy: Edgy) -> None:
    """For a segment both synchronous and continuous, the edge's answer equals the streamer's membership once it
    reads the event the edge logged."""
    assert interact(client, edgy, edge_event("p1", "commerce.checkouts")).json() == lookup(edgy.us, edgy.checkout)
    segmenter = StreamSegmenter(services.stream_log(), StoresSegmentationTarget(services), edgy.clock)
    assert segmenter.run_until_idle() == 1
    response = client.get("/data/core/ups/access/entities", headers=edgy.org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": "p1@example.com", "entityIdNS": "email",
        "mergePolicyId": edgy.policy})
    assert response.status_code == 200, response.text
    (entity,) = response.json().values()
    assert entity["entity"]["segmentMembership"]["ups"] == {
        segment: {"status": "realized", "lastQualificationTime": "2026-12-02T10:00:00Z"}
        for segment in (edgy.us, edgy.checkout)}


def test_collect_accepts_events_durably_and_they_reach_the_dataset(client: TestClient, services: Services,
                                                                   edgy: Edgy) -> None:
    body = {"events": [edge_event("p1", "commerce.checkouts")["event"], edge_event("p9")["event"]]}
    body["events"][0]["xdm"]["_id"] = "checkout-1"
    response = client.post("/ee/v2/collect", headers=edgy.org.headers(),
                           params={"dataStreamId": edgy.datastream, "requestId": "req-7"}, json=body)
    assert response.status_code == 202, response.text
    assert response.json() == {"requestId": "req-7"}
    silent = client.post("/ee/v2/collect", headers=edgy.org.headers(),
                         params={"dataStreamId": edgy.datastream, "silent": "true"}, json=body)
    assert silent.status_code == 204 and silent.content == b""
    # Answered means logged: the four events are on disk before any flush.
    logged = services.stream_log().read(0, 100)
    assert [(m.entry.dataset_id, m.entry.kind) for m in logged] == [(edgy.events, "event")] * 4
    assert logged[0].entry.record["_id"] == "checkout-1" and logged[0].entry.record["timestamp"] == "2026-12-02T09:55:00Z"
    assert logged[1].entry.record["_id"] != logged[3].entry.record["_id"]  # an _id is made per event
    # The flusher writes them to the datastream's dataset as a batch, like any streamed message.
    sink = CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock")
    assert flush(services.stream_log(), sink).records == 4
    records = lake_records(client, edgy.org, services.settings.lake, edgy.events)
    assert sorted(r["eventType"] for r in records) == ["commerce.checkouts"] * 2 + ["web.webpagedetails.pageViews"] * 2
    assert next(r["identityMap"] for r in records if r["_id"] == "checkout-1") == [
        ("email", [{"id": "p1@example.com", "primary": True}])]


def test_interact_logs_its_event_for_streaming_ingestion(client: TestClient, services: Services, edgy: Edgy) -> None:
    assert interact(client, edgy, edge_event("p3")).status_code == 200
    (message,) = services.stream_log().read(0, 10)
    assert message.entry.dataset_id == edgy.events and message.entry.inlet_id == edgy.datastream
    assert message.entry.record["eventType"] == "web.webpagedetails.pageViews" and message.entry.problems == ()


def edge_error(response: Any, status: int, code: str, title: str, field: str, request_id: str = "req-1") -> dict[str, Any]:
    """The Edge Network's problem detail (``help/server-api/error-handling.md``)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert set(body) == {"type", "status", "title", "detail", "report"}
    assert body["type"] == f"https://ns.adobe.com/aep/errors/{code}-{status}"
    assert (body["status"], body["title"]) == (status, title)
    assert body["report"]["requestId"] == request_id and body["report"]["field"] == field
    return dict(body)


def test_unknown_datastreams_are_aeps_invalid_datastream_id(client: TestClient, services: Services,
                                                             edgy: Edgy) -> None:
    for datastream in ("8e2a4f0e-0000-4000-8000-000000000000", ""):
        response = interact(client, edgy, edge_event("p1"), dataStreamId=datastream)
        body = edge_error(response, 400, "EXEG-0003", "Invalid datastream ID", "dataStreamId")
        assert body["report"]["orgId"] == edgy.org.org_id
    # Another org's credentials do not find it either (nor log anything).
    stranger = make_org(services)
    response = client.post("/ee/v2/collect", headers=stranger.headers(), params={"dataStreamId": edgy.datastream},
                           json={"events": [edge_event("p1")["event"]]})
    body = edge_error(response, 400, "EXEG-0003", "Invalid datastream ID", "dataStreamId",
                      request_id=response.json()["report"]["requestId"])
    assert body["report"]["configId"] == edgy.datastream
    assert services.stream_log().read(0, 10) == []


@pytest.mark.parametrize(("identities", "detail"), [
    ({"email": [{"id": "p1@example.com"}]}, "No primary identity found in the input event"),
    ({"email": [{"id": "p1@example.com", "primary": True}], "ECID": [{"id": "123", "primary": True}]},
     "marks 2 identities primary (email:p1@example.com, ECID:123)"),
])
def test_an_event_needs_exactly_one_primary_identity(client: TestClient, services: Services, edgy: Edgy,
                                                     identities: dict[str, Any], detail: str) -> None:
    response = interact(client, edgy, edge_event("p1", **identities))
    body = edge_error(response, 400, "EXEG-0306", "No primary identity set in request (event)",
                      "event.xdm.identityMap")
    assert detail in body["detail"]
    collected = client.post("/ee/v2/collect", headers=edgy.org.headers(), params={"dataStreamId": edgy.datastream},
                            json={"events": [edge_event("p1")["event"], edge_event("p1", **identities)["event"]]})
    edge_error(collected, 400, "EXEG-0306", "No primary identity set in request (event)", "events[1].xdm.identityMap",
               request_id=collected.json()["report"]["requestId"])
    assert services.stream_log().read(0, 10) == []  # all or nothing


@pytest.mark.parametrize(("body", "field", "detail"), [
    ([1, 2], "body", "'body' is required and must be an object"),
    ({"events": []}, "event", "'event' is required and must be an object"),
    ({"event": {"data": {}}}, "event.xdm", "'event.xdm' is required and must be an object"),
    ({"event": {"xdm": {**edge_event("p1")["event"]["xdm"], "timestamp": "yesterday"}}}, "event.xdm.timestamp",
     "'event.xdm.timestamp'"),
])
def test_bad_interact_bodies_are_400_naming_the_field(client: TestClient, edgy: Edgy, body: Any, field: str,
                                                      detail: str) -> None:
    found = edge_error(interact(client, edgy, body), 400, "EXEG-0104", "Invalid request", field)
    assert found["detail"].startswith(detail)


@pytest.mark.parametrize(("body", "field"), [
    ({"event": edge_event("p1")["event"]}, "events"),
    ({"events": [{"xdm": "x"}]}, "events[0].xdm"),
])
def test_bad_collect_bodies_are_400_naming_the_field(client: TestClient, edgy: Edgy, body: Any, field: str) -> None:
    response = client.post("/ee/v2/collect", headers=edgy.org.headers(),
                           params={"dataStreamId": edgy.datastream, "requestId": "req-1"}, json=body)
    edge_error(response, 400, "EXEG-0104", "Invalid request", field)


def test_a_merge_policy_not_active_on_edge_is_a_configuration_error(client: TestClient, edgy: Edgy) -> None:
    assert interact(client, edgy, edge_event("p1")).json() == lookup(edgy.us)  # what the edge keeps is read
    plain = edge_policy(client, edgy.org, active=False, name="not on edge")
    refused = client.post(DATASTREAMS, headers=edgy.org.headers(),
                          json={"name": "web", "datasetId": edgy.events, "mergePolicyId": plain})
    body = assert_aep_error(refused, 422, detail_contains="is not active on edge")
    assert body["report"]["field"] == "mergePolicyId"
    # A datastream whose policy stops being active on edge answers AEP's ConfigurationError (422).
    patched = client.patch(f"{POLICIES}/{edgy.policy}", headers=edgy.org.headers(),
                           json=[{"op": "replace", "path": "/isActiveOnEdge", "value": False}])
    assert patched.status_code == 200, patched.text
    found = edge_error(interact(client, edgy, edge_event("p1")), 422, "EXEG-0104", "Unprocessable entity",
                       "mergePolicyId")
    assert f"merge policy '{edgy.policy}' is not active on edge" in found["detail"]
    assert client.post(DATASTREAMS, headers=edgy.org.headers(),
                       json={"name": "web", "datasetId": edgy.events}).status_code == 422  # none left on edge


def test_an_edited_definition_answers_from_the_next_call(client: TestClient, services: Services,
                                                         edgy: Edgy) -> None:
    """The edge keeps what it read of the metadata between calls only while nothing of it changed (the
    metadata generation): an edit, in this process or another, is in the very next answer."""
    assert interact(client, edgy, edge_event("p1")).json() == lookup(edgy.us)
    assert interact(client, edgy, edge_event("p0")).json() == lookup()
    edited = client.patch(f"{DEFINITIONS}/{edgy.us}", headers=edgy.org.headers(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'}})
    assert edited.status_code == 200, edited.text
    assert interact(client, edgy, edge_event("p1")).json() == lookup()
    assert interact(client, edgy, edge_event("p0")).json() == lookup(edgy.us)
    # Another process (a second API host, say) takes it off the edge: its own connection, the same store.
    other = Database(services.db.url)
    try:
        with other.session() as session:
            row = session.get(SegmentDefinition, edgy.us)
            assert row is not None
            row.evaluation_info = {**row.evaluation_info, "synchronous": {"enabled": False}}
    finally:
        other.dispose()
    assert interact(client, edgy, edge_event("p0")).json() == lookup()


def test_datastreams_are_created_read_and_listed_in_their_sandbox(client: TestClient, edgy: Edgy) -> None:
    found = client.get(f"{DATASTREAMS}/{edgy.datastream}", headers=edgy.org.headers())
    assert found.status_code == 200, found.text
    body = found.json()
    assert {k: v for k, v in body.items() if k not in ("sandboxId", "created", "updated")} == {
        "id": edgy.datastream, "name": "web", "description": None, "imsOrgId": edgy.org.org_id, "sandboxName": "prod",
        "datasetId": edgy.events, "mergePolicyId": edgy.policy}  # the sandbox's policy active on edge
    listed = client.get(DATASTREAMS, headers=edgy.org.headers()).json()
    assert listed["children"] == [body] and listed["_page"]["totalCount"] == 1
    # Another sandbox of the org does not see it.
    assert client.post("/data/foundation/sandbox-management/sandboxes", headers=edgy.org.headers(),
                       json={"name": "dev", "title": "Dev", "type": "development"}).status_code == 201
    assert_aep_error(client.get(f"{DATASTREAMS}/{edgy.datastream}", headers=edgy.org.headers("dev")), 404)
    assert client.get(DATASTREAMS, headers=edgy.org.headers("dev")).json()["children"] == []
    response = interact(client, edgy, edge_event("p1"))
    assert response.status_code == 200
    other = client.post("/ee/v2/interact", headers=edgy.org.headers("dev"),
                        params={"dataStreamId": edgy.datastream, "requestId": "req-1"}, json=edge_event("p1"))
    edge_error(other, 400, "EXEG-0003", "Invalid datastream ID", "dataStreamId")


@pytest.mark.parametrize(("change", "field", "status"), [
    ({"name": ""}, "name", 400),
    ({"datasetId": "0" * 24}, "datasetId", 400),
    ({"datasetId": "people"}, "datasetId", 400),  # a profile dataset: the edge writes events
    ({"mergePolicyId": "8e2a4f0e-0000-4000-8000-000000000000"}, "mergePolicyId", 400),
    ({"description": 5}, "description", 400),
])
def test_bad_datastreams_are_refused_naming_the_field(client: TestClient, edgy: Edgy, change: dict[str, Any],
                                                      field: str, status: int) -> None:
    datasets = client.get("/data/foundation/catalog/dataSets", headers=edgy.org.headers()).json()
    people = next(i for i, d in datasets.items() if d["name"] == "people")
    body = {"name": "web", "datasetId": edgy.events, **change}
    if body["datasetId"] == "people":
        body["datasetId"] = people
    found = assert_aep_error(client.post(DATASTREAMS, headers=edgy.org.headers(), json=body), status)
    assert found["report"]["field"] == field


def test_the_cli_creates_a_datastream(client: TestClient, services: Services, edgy: Edgy) -> None:
    from typer.testing import CliRunner

    from openseg.cli import app as cli

    settings = services.settings
    env = {"OPENSEG_HOME": str(settings.home), "OPENSEG_DATABASE_URL": settings.database_url,
           "OPENSEG_LAKE": str(settings.lake)}
    done = CliRunner().invoke(cli, ["datastreams", "create", "--dataset", edgy.events, "--org", edgy.org.org_id,
                                    "--name", "app"], env=env)
    assert done.exit_code == 0, done.output
    created = done.stdout.strip().splitlines()[-1].removeprefix("datastream ")
    found = client.get(f"{DATASTREAMS}/{created}", headers=edgy.org.headers()).json()
    assert (found["name"], found["datasetId"], found["mergePolicyId"]) == ("app", edgy.events, edgy.policy)
    refused = CliRunner().invoke(cli, ["datastreams", "create", "--dataset", "nosuch", "--org", edgy.org.org_id],
                                 env=env)
    assert refused.exit_code == 2 and "dataset 'nosuch' does not exist in this sandbox" in refused.output


def test_primary_given_as_text_is_stored_as_a_boolean(client: TestClient, services: Services, edgy: Edgy) -> None:
    """AEP's own collect example sends ``"primary": "true"``."""
    body = edge_event("p1", email=[{"id": "p1@example.com", "primary": "true"}], ECID=[{"id": "9", "primary": "false"}])
    assert interact(client, edgy, body).json() == lookup(edgy.us)
    (message,) = services.stream_log().read(0, 10)
    assert message.entry.record["identityMap"] == {"email": [{"id": "p1@example.com", "primary": True}],
                                                   "ECID": [{"id": "9", "primary": False}]}


def test_an_edge_segment_of_segments_reads_the_batch_membership(client: TestClient, services: Services, edgy: Edgy,
                                                                 drain: Callable[[], int]) -> None:
    """"Segment of segments: one or more batch or edge segments" (edge-segmentation.md): the batch segment's
    members as its last job left them."""
    from tests.api.flows import event
    from tests.api.test_segment_jobs import run_job

    upload_batch(client, edgy.org.headers(), edgy.events, {"events.json": json_lines(
        [event(i, 2, eventType="commerce.checkouts") for i in (0, 3)] + [event(6, 3, eventType="commerce.checkouts")])})
    drain()
    loyal = define(client, edgy.org, "loyal on the edge", f'inSegment("{edgy.counted}")', edgy.policy)
    assert loyal["evaluationInfo"]["synchronous"] == {"enabled": True}
    run_job(client, edgy.org, drain, edgy.counted)  # p2 checked out twice, p3 once
    assert interact(client, edgy, edge_event("p2")).json() == lookup(loyal["id"])
    assert interact(client, edgy, edge_event("p3")).json() == lookup(edgy.us)


def test_an_edge_call_after_a_job_reads_the_membership_it_published(client: TestClient, edgy: Edgy,
                                                                      drain: Callable[[], int]) -> None:
    """The edge keeps the published membership's pointer while the metadata stays as it was: a call after a job
    reads what that job published, not what the previous call read."""
    from tests.api.flows import event
    from tests.api.test_segment_jobs import run_job

    loyal = define(client, edgy.org, "loyal on the edge", f'inSegment("{edgy.counted}")', edgy.policy)
    assert interact(client, edgy, edge_event("p2")).json() == lookup()  # no job yet: not loyal
    upload_batch(client, edgy.org.headers(), edgy.events, {"events.json": json_lines(
        [event(i, 2, eventType="commerce.checkouts") for i in (0, 3)])})
    drain()
    run_job(client, edgy.org, drain, edgy.counted)
    assert interact(client, edgy, edge_event("p2")).json() == lookup(loyal["id"])


def test_a_datastream_whose_dataset_is_gone_keeps_nothing(client: TestClient, services: Services, edgy: Edgy) -> None:
    deleted = client.delete(f"/data/foundation/catalog/dataSets/{edgy.events}", headers=edgy.org.headers())
    assert deleted.status_code == 200, deleted.text
    response = client.post("/ee/v2/collect", headers=edgy.org.headers(),
                           params={"dataStreamId": edgy.datastream, "requestId": "req-1"},
                           json={"events": [edge_event("p1")["event"]]})
    found = edge_error(response, 422, "EXEG-0104", "Unprocessable entity", "datasetId")
    assert f"dataset '{edgy.events}' no longer exists" in found["detail"]
    edge_error(interact(client, edgy, edge_event("p1")), 422, "EXEG-0104", "Unprocessable entity", "datasetId")
    assert services.stream_log().read(0, 10) == []


def test_without_x_sandbox_name_the_datastream_is_found_in_its_own_sandbox(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    """AEP finds a datastream by its id (``x-sandbox-name`` is optional on the Server API): a datastream of a
    development sandbox answers calls that send no sandbox header; credentials scoped to another sandbox do not
    find it."""
    from openseg.store.tenancy import issue_credentials

    assert client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                       json={"name": "dev", "title": "Dev", "type": "development"}).status_code == 201
    dev = org.headers("dev")
    events = create_dataset(client, dev, "events", EVENT)
    created = client.post(POLICIES, headers=dev, json={
        "name": "edge", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
        "schema": {"name": "_xdm.context.profile"}, "isActiveOnEdge": True})
    assert created.status_code == 200, created.text
    datastream = client.post(DATASTREAMS, headers=dev, json={"name": "web", "datasetId": events}).json()
    assert datastream["sandboxName"] == "dev"
    body = {"events": [edge_event("p1")["event"]]}
    answered = client.post("/ee/v2/collect", headers=org.headers(None), params={"dataStreamId": datastream["id"]},
                           json=body)
    assert answered.status_code == 202, answered.text
    assert client.post("/ee/v2/collect", headers=org.headers("prod"), params={"dataStreamId": datastream["id"]},
                       json=body).status_code == 400
    with services.db.session() as session:
        issued = issue_credentials(session, org.org_id, "prod", sandbox_only=True)
    scoped = Org(org_id=org.org_id, api_key=issued.api_key, token=issued.access_token)
    refused = client.post("/ee/v2/collect", headers=scoped.headers(None), params={"dataStreamId": datastream["id"]},
                          json=body)
    assert refused.status_code == 400 and refused.json()["type"].endswith("EXEG-0003-400")
    assert [m.entry.sandbox_id for m in services.stream_log().read(0, 10)] == [datastream["sandboxId"]]


def test_an_interact_call_is_answered_before_fastapi_routes_it(client: TestClient, services: Services,
                                                                edgy: Edgy) -> None:
    """``/ee/v2/interact`` is answered by ``api/edge.py``'s ``EdgeCalls``, which checks the credentials in the edge
    lane with the call's work: the route and its dependencies never run for a call it answers (a trailing slash
    too), and its answers and logged events are the route's. What it does not answer goes on to the route with its
    body: refused credentials get the route's errors, and a call refused for its body is answered the same way
    either way."""
    routed: list[str] = []

    def counted(request: Request, svc: Services = Depends(services_dependency)) -> Any:
        routed.append(request.url.path)
        return routes.edge_caller(request, svc)

    app = client.app
    app.dependency_overrides[routes.edge_caller] = counted  # type: ignore[attr-defined]
    try:
        answered = interact(client, edgy, edge_event("p1"))
        slashed = client.post("/ee/v2/interact/", headers=edgy.org.headers(),
                              params={"dataStreamId": edgy.datastream, "requestId": "req-1"}, json=edge_event("p0"))
        bad_body = interact(client, edgy, {"event": {}})
        assert routed == []
        stranger = {**edgy.org.headers(), "Authorization": "Bearer not-a-token"}
        refused = client.post("/ee/v2/interact", headers=stranger, params={"dataStreamId": edgy.datastream},
                              json=edge_event("p1"))
        assert routed == ["/ee/v2/interact"], refused.text
    finally:
        app.dependency_overrides.pop(routes.edge_caller)  # type: ignore[attr-defined]
    assert answered.status_code == 200 and answered.json() == lookup(edgy.us)
    assert slashed.status_code == 200 and slashed.json() == lookup()
    edge_error(bad_body, 400, "EXEG-0104", "Invalid request", "event.xdm")
    assert (refused.status_code, refused.json()) == (401, {"error_code": "401013", "message": "Oauth token is not valid"})
    assert [m.entry.record["identityMap"]["email"][0]["id"] for m in services.stream_log().read(0, 10)] == \
        ["p1@example.com", "p0@example.com"]
