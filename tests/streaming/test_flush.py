"""Streamed messages reach the lake as ordinary batches of their dataset, exactly once, and the profile
store through the batch hooks (the incremental refresh)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.bootstrap import streamer
from openseg.catalog.streaming import CatalogLakeSink
from openseg.container import Services
from openseg.streaming.flusher import consumer_name, flush
from tests.api.flows import create_dataset, person
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, batches, click, create_inlet, envelope, lake_records

PROFILE_SCHEMA = "https://ns.adobe.com/xdm/context/profile"


def _post(client: TestClient, inlet: dict[str, Any], record: dict[str, Any], schema: str = EVENT_SCHEMA) -> None:
    response = client.post(f"/collection/{inlet['auth']['params']['inletId']}", json=envelope(record, schema=schema))
    assert response.status_code == 200, response.text


def test_a_flush_writes_valid_records_as_a_batch_and_invalid_ones_as_a_failed_batch(
        client: TestClient, services: Services, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id)
    for i in range(3):
        _post(client, inlet, click(i, commerce={"order": {"priceTotal": 10.5 + i}}))
    _post(client, inlet, click(3, timestamp="yesterday"))
    assert streamer(services).run_until_idle() == 4
    found = batches(client, org, dataset_id)
    assert sorted(b["status"] for b in found) == ["failed", "success"]
    ok = next(b for b in found if b["status"] == "success")
    assert ok["metrics"] == {"recordsRead": 3, "recordsWritten": 3, "failedRecordCount": 0}
    assert ok["inputFormat"] == {"format": "json", "openseg:streamSeq": {"first": 1, "last": 3}}
    failed = next(b for b in found if b["status"] == "failed")
    assert failed["metrics"]["recordsRead"] == 1 and failed["metrics"]["recordsWritten"] == 0
    assert failed["inputFormat"] == {"format": "json", "openseg:streamSeq": {"first": 4, "last": 4}}
    (error,) = failed["errors"]
    assert error["field"] == "timestamp" and error["file"] == "stream"
    assert error["reason"] == "must be an RFC 3339 date-time with an offset, not 'yesterday'"
    records = lake_records(client, org, services.settings.lake, dataset_id)
    assert sorted(r["_id"] for r in records) == ["click-0", "click-1", "click-2"]
    # Typed as batch ingestion types them: the timestamp is a UTC timestamp, not text.
    assert {r["timestamp"].isoformat() for r in records} == {"2026-12-01T10:00:00+00:00"}
    assert sorted(r["commerce"]["order"]["priceTotal"] for r in records) == [10.5, 11.5, 12.5]
    # Nothing is written twice: a second flush finds nothing new. The log keeps nothing the lake has.
    assert streamer(services).run_until_idle() == 0
    assert len(batches(client, org, dataset_id)) == 2
    assert services.stream_log().read(0, 100) == [] and services.stream_log().last_seq() == 4


def test_a_flush_killed_before_its_transaction_is_redone_once(client: TestClient, services: Services, org: Org,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id)
    for i in range(5):
        _post(client, inlet, click(i))
    sink = CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock")
    stream_log = services.stream_log()

    class Died(Exception):
        pass

    def dying_session() -> Any:
        raise Died  # the files are in place; the transaction recording them never runs

    monkeypatch.setattr(services.db, "session", dying_session)
    monkeypatch.setattr(sink, "offset", lambda consumer: 0)
    with pytest.raises(Died):
        flush(stream_log, sink)
    monkeypatch.undo()
    assert batches(client, org, dataset_id) == []
    for i in range(5, 7):  # more messages arrive before the retry
        _post(client, inlet, click(i))
    assert streamer(services).run_until_idle() == 7
    records = lake_records(client, org, services.settings.lake, dataset_id)
    assert sorted(r["_id"] for r in records) == [f"click-{i}" for i in range(7)]
    (batch,) = batches(client, org, dataset_id)
    assert batch["metrics"]["recordsWritten"] == 7
    assert sink.offset(consumer_name(stream_log)) == stream_log.last_seq()


def test_messages_of_several_datasets_make_one_batch_each(client: TestClient, services: Services, org: Org) -> None:
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    other = create_dataset(client, org.headers(), "more events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, events)
    inlet_id = inlet["auth"]["params"]["inletId"]
    messages = [envelope(click(0)), envelope(click(1), dataset_id=other), envelope(click(2))]
    assert client.post(f"/collection/batch/{inlet_id}", json={"messages": messages}).status_code == 207
    assert streamer(services).run_until_idle() == 3
    lake = services.settings.lake
    assert sorted(r["_id"] for r in lake_records(client, org, lake, events)) == ["click-0", "click-2"]
    assert [r["_id"] for r in lake_records(client, org, lake, other)] == ["click-1"]


def _profile(client: TestClient, org: Org, email: str) -> dict[str, Any] | None:
    response = client.get("/data/core/ups/access/entities", headers=org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "email"})
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    (body,) = response.json().values()
    return dict(body["entity"])


def test_a_streamed_fragment_reaches_the_profile_through_the_incremental_refresh(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = create_dataset(client, org.headers())
    from tests.api.flows import json_lines, upload_batch

    upload_batch(client, org.headers(), people, {"a.json": json_lines([person(i) for i in range(10)])})
    drain()
    inlet = create_inlet(client, org, people)
    _post(client, inlet, person(3, loyalty={"points": 999}), schema=PROFILE_SCHEMA)
    _post(client, inlet, person(42), schema=PROFILE_SCHEMA)
    assert streamer(services).run_until_idle() == 2
    drain()
    assert _profile(client, org, "p3@example.com")["loyalty"] == {"points": 999}  # type: ignore[index]
    assert _profile(client, org, "p42@example.com")["person"]["name"] == {"firstName": "First42",  # type: ignore[index]
                                                                           "lastName": "Last42"}
    (policy,) = client.get("/data/core/ups/config/mergePolicies", headers=org.headers()).json()["children"]
    store = client.get(f"/data/core/ups/config/mergePolicies/{policy['id']}", headers=org.headers()).json()
    assert store["openseg:profileStore"]["lastRefresh"] == "incremental"
    assert store["openseg:profileStore"]["profiles"] == 11


def test_the_streamer_thread_flushes_within_its_interval(client: TestClient, services: Services, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id)
    running = streamer(services)
    running.flush_seconds, running.poll_seconds = 0.2, 0.02
    stop = threading.Event()
    thread = threading.Thread(target=running.run, args=(stop,), daemon=True)
    thread.start()
    try:
        _post(client, inlet, click(1))
        acknowledged = time.monotonic()
        while not batches(client, org, dataset_id) and time.monotonic() - acknowledged < 10:
            time.sleep(0.02)
        waited = time.monotonic() - acknowledged
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert [b["status"] for b in batches(client, org, dataset_id)] == ["success"]
    assert waited < 2.0, waited


def test_only_one_flusher_holds_the_log(services: Services) -> None:
    sink = CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock")
    with sink.exclusive() as first:
        assert first is True
        with sink.exclusive() as second:
            assert second is False
        assert streamer(services).run_until_idle() == 0
    with sink.exclusive() as again:
        assert again is True


def test_streamed_records_build_the_same_profiles_as_the_same_records_sent_by_batch(
        client: TestClient, services: Services, drain: Callable[[], int]) -> None:
    from tests.api.flows import event, json_lines, upload_batch
    from tests.conftest import make_org

    people = [person(i) for i in range(8)] + [person(2, loyalty={"points": 7})]
    events = [event(i, i % 5) for i in range(20)]
    streamed, batched = make_org(services), make_org(services)
    for_stream = {"people": create_dataset(client, streamed.headers()),
                  "events": create_dataset(client, streamed.headers(), "events", EVENT_SCHEMA)}
    people_inlet = create_inlet(client, streamed, for_stream["people"])
    events_inlet = create_inlet(client, streamed, for_stream["events"])
    for record in people:
        _post(client, people_inlet, record, schema=PROFILE_SCHEMA)
    for record in events:
        _post(client, events_inlet, record)
    assert streamer(services).run_until_idle() == len(people) + len(events)
    upload_batch(client, batched.headers(), create_dataset(client, batched.headers()),
                 {"people.json": json_lines(people)})
    upload_batch(client, batched.headers(), create_dataset(client, batched.headers(), "events", EVENT_SCHEMA),
                 {"events.json": json_lines(events)})
    drain()

    def seen(org: Org) -> tuple[dict[str, Any], dict[str, Any]]:
        (policy,) = client.get("/data/core/ups/config/mergePolicies", headers=org.headers()).json()["children"]
        store = client.get(f"/data/core/ups/config/mergePolicies/{policy['id']}", headers=org.headers()).json()
        stats = {k: store["openseg:profileStore"][k] for k in ("profiles", "fragments", "events")}
        entities = {}
        for i in range(8):
            response = client.get("/data/core/ups/access/entities", headers=org.headers(), params={
                "schema.name": "_xdm.context.profile", "entityId": f"p{i}@example.com", "entityIdNS": "email"})
            assert response.status_code == 200, response.text
            (body,) = response.json().values()
            entities[f"p{i}"] = body["entity"]
        return stats, entities

    assert seen(streamed) == seen(batched)
    assert seen(streamed)[1]["p2"]["loyalty"] == {"points": 7}


def _batch_ids(client: TestClient, org: Org, dataset_id: str) -> list[str]:
    """The dataset's batch ids in log order."""
    response = client.get("/data/foundation/catalog/batches", headers=org.headers(),
                          params={"dataSet": dataset_id, "limit": "100"})
    assert response.status_code == 200, response.text
    found = response.json().items()
    return [batch_id for batch_id, batch in sorted(found, key=lambda b: b[1]["inputFormat"]["openseg:streamSeq"]["last"])]


def test_flushed_batches_ask_for_a_profile_build_at_most_once_per_interval(
        client: TestClient, services: Services, org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    # A build at 1M profiles rewrites the store's files: a flush a second must not ask for one a second.
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id)
    monkeypatch.setattr(services, "settings", services.settings.with_(stream_build_seconds=15.0))
    asked: list[str] = []
    monkeypatch.setattr(services, "after_batch", [lambda _, batch_id: asked.append(batch_id)])
    clock = [1000.0]
    sink = CatalogLakeSink(services, services.settings.home / "stream" / "flusher.lock", lambda: clock[0])
    stream_log = services.stream_log()
    for second in range(4):  # a flush a second: the first asks at once, the next three wait
        _post(client, inlet, click(second))
        clock[0] = 1000.0 + second
        flush(stream_log, sink)
    ids = _batch_ids(client, org, dataset_id)
    assert len(ids) == 4 and asked == ids[:1]
    clock[0] = 1014.9
    sink.request_builds()
    assert asked == ids[:1]
    clock[0] = 1015.0  # the interval has passed: one request, for the newest batch (a build reads them all)
    sink.request_builds()
    assert asked == [ids[0], ids[3]]
    sink.request_builds(now=True)  # nothing waits
    assert asked == [ids[0], ids[3]]
    _post(client, inlet, click(9))
    flush(stream_log, sink)
    assert len(asked) == 2  # 1 s after the last request
    sink.request_builds(now=True)  # what run_until_idle does at its end
    assert asked == [ids[0], ids[3], _batch_ids(client, org, dataset_id)[4]]
