"""Profile access reads the stream log: an acknowledged fragment or event is in ``/access/entities`` at once,
before any flush or refresh, and the answer stays the same through the flush and the refresh (the log keeps a
message until a build holds it, then lets it go)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.store.stream_log import SqliteStreamLog
from tests.api.flows import create_dataset, person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, batches, create_inlet
from tests.streaming.test_streaming_segmentation import PROFILE_SCHEMA, Clock, post, streamer

ENTITIES = "/data/core/ups/access/entities"


def profile(client: TestClient, org: Org, namespace: str, identity: str) -> dict[str, Any]:
    response = client.get(ENTITIES, headers=org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": identity, "entityIdNS": namespace})
    assert response.status_code == 200, response.text
    (body,) = response.json().values()
    return dict(body)


def events(client: TestClient, org: Org, namespace: str, identity: str, **params: str) -> dict[str, Any]:
    response = client.get(ENTITIES, headers=org.headers(), params={
        "schema.name": "_xdm.context.experienceevent", "relatedSchema.name": "_xdm.context.profile",
        "relatedEntityId": identity, "relatedEntityIdNS": namespace, **params})
    assert response.status_code == 200, response.text
    return dict(response.json())


def buy(i: int, email: str, day: int) -> dict[str, Any]:
    return {"_id": f"buy-{i}", "timestamp": f"2026-11-{day:02d}T10:00:00Z", "eventType": "commerce.purchases",
            "identityMap": {"email": [{"id": email, "primary": True}]}, "commerce": {"order": {"priceTotal": 10.5}}}


def test_an_acknowledged_fragment_and_event_are_visible_at_once_and_stay_the_same_after_the_refresh(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(1), person(2)])
    purchases = create_dataset(client, org.headers(), "purchases", EVENT_SCHEMA)
    before = profile(client, org, "email", "p1@example.com")
    assert before["entity"]["loyalty"] == {"points": 10}
    post(client, create_inlet(client, org, people), person(1, loyalty={"points": 15, "tier": "gold"}),
         schema=PROFILE_SCHEMA)
    post(client, create_inlet(client, org, purchases), buy(1, "p1@example.com", 3))
    post(client, create_inlet(client, org, purchases), buy(2, "p1@example.com", 1))
    # Nothing flushed, nothing refreshed: the build does not have them, the log does.
    now = profile(client, org, "email", "p1@example.com")
    assert now["entityId"] == "email:p1@example.com"
    assert now["entity"]["loyalty"] == {"points": 15, "tier": "gold"}
    assert now["entity"]["person"] == {"name": {"firstName": "First1", "lastName": "Last1"}}  # from the build
    page = events(client, org, "email", "p1@example.com")
    assert [(c["entityId"], c["timestamp"]) for c in page["children"]] == [
        ("buy-2", 1793527200000), ("buy-1", 1793700000000)]
    assert page["children"][1]["entity"]["commerce"] == {"order": {"priceTotal": 10.5}}
    assert page["_page"]["count"] == 2
    newest = events(client, org, "email", "p1@example.com", orderby="-timestamp", limit="1")
    assert [c["entityId"] for c in newest["children"]] == ["buy-1"] and newest["_page"]["next"]
    assert profile(client, org, "email", "p2@example.com")["entity"]["loyalty"] == {"points": 20}  # untouched

    consumers = streamer(services, Clock())
    assert consumers.run_until_idle() == 3  # flushed to the lake: no build holds them yet, the log keeps them
    assert [m.seq for m in services.stream_log().read(0, 10)] == [1, 2, 3]
    assert profile(client, org, "email", "p1@example.com")["entity"] == now["entity"]
    drain()  # the flushed batches refresh the profile store
    refreshed = profile(client, org, "email", "p1@example.com")
    assert refreshed["entity"] == now["entity"]
    assert events(client, org, "email", "p1@example.com")["children"] == page["children"]  # no event twice
    consumers.run_until_idle()  # the next flush lets go of what the build holds
    assert services.stream_log().read(0, 10) == []
    assert profile(client, org, "email", "p1@example.com")["entity"] == now["entity"]


def test_a_profile_only_streamed_is_found_and_another_process_sees_the_log(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(1)])
    missing = client.get(ENTITIES, headers=org.headers(), params={"entityId": "p9@example.com", "entityIdNS": "email"})
    assert missing.status_code == 404
    post(client, create_inlet(client, org, people), person(9), schema=PROFILE_SCHEMA)
    # The log is on disk when the message is acknowledged: a reader of another process finds it by identity.
    other = SqliteStreamLog(services.settings.home / "stream" / "log.sqlite")
    sandbox_id = batches(client, org, people)[0]["sandboxId"]
    (message,) = other.carrying(sandbox_id, ["email:p9@example.com"], 0)
    assert message.entry.record["person"] == {"name": {"firstName": "First9", "lastName": "Last9"}}
    found = profile(client, org, "email", "p9@example.com")
    assert found["entityId"] == "email:p9@example.com"
    assert found["entity"]["homeAddress"] == {"country": "US", "city": "City2"}
    assert found["identityGraph"] == ["email:p9@example.com"]
