"""``openseg:streamingOptIn``: a definition of a shape AEP does not stream (a count of events in a 30-day window)
streams when it opts in, enters and exits as events arrive and as its window passes, and a job at the same time
agrees with it (drift 0); ``evaluationInfo`` stays AEP's answer. Without the opt-in the same expression waits for
a job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet
from tests.streaming.test_drift import job_at, members, purchase
from tests.streaming.test_streaming_segmentation import DEFINITIONS, T0, Clock, post, streamer, ups

TWICE_IN_30_DAYS = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 2'
OPT_IN = "openseg:streamingOptIn"


def create(client: TestClient, org: Org, name: str, **extra: Any) -> Any:
    return client.post(DEFINITIONS, headers=org.headers(), json={
        "name": name, "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": TWICE_IN_30_DAYS}, **extra})


def test_a_definition_opts_in_and_its_evaluation_info_stays_aeps(client: TestClient, org: Org) -> None:
    created = create(client, org, "bought twice, streamed", **{OPT_IN: True})
    assert created.status_code == 200, created.text
    opted = created.json()
    continuous = opted["evaluationInfo"]["continuous"]
    assert continuous["enabled"] is False and continuous["reason"]  # AEP would not stream it
    assert opted[OPT_IN] is True
    assert client.get(f"{DEFINITIONS}/{opted['id']}", headers=org.headers()).json() == opted
    plain = create(client, org, "bought twice").json()
    assert OPT_IN not in plain  # shown only when on: an AEP client sees AEP's body
    # A PATCH turns it off (a new version) and on again.
    off = client.patch(f"{DEFINITIONS}/{opted['id']}", headers=org.headers(), json={OPT_IN: False})
    assert off.status_code == 200, off.text
    assert OPT_IN not in off.json() and off.json()["version"] == 2
    on = client.patch(f"{DEFINITIONS}/{opted['id']}", headers=org.headers(), json={OPT_IN: True})
    assert on.json()[OPT_IN] is True and on.json()["evaluationInfo"] == opted["evaluationInfo"]
    for wrong in ("yes", 1, {"enabled": True}):
        refused = create(client, org, "wrong", **{OPT_IN: wrong})
        body = assert_aep_error(refused, 400, detail_contains=f"'{OPT_IN}' must be true or false")
        assert body.get("report", {}).get("field", OPT_IN) == OPT_IN
        assert_aep_error(client.patch(f"{DEFINITIONS}/{opted['id']}", headers=org.headers(), json={OPT_IN: wrong}),
                         400, detail_contains=OPT_IN)


def test_an_opted_in_window_count_streams_expires_and_agrees_with_a_job(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int],
        monkeypatch: pytest.MonkeyPatch) -> None:
    load_people(client, org, drain, [person(1), person(2)])
    opted = create(client, org, "bought twice, streamed", **{OPT_IN: True}).json()
    plain = create(client, org, "bought twice").json()
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, events)
    # The first job is each segment's baseline (nobody yet): drift from then on compares with streaming.
    job_at(client, org, drain, monkeypatch, T0, opted["id"], plain["id"])
    clock = Clock()
    consumers = streamer(services, clock)
    assert consumers.segmenter is not None
    post(client, inlet, purchase(1, 1, T0 - dt.timedelta(days=3)))
    assert consumers.segmenter.run_until_idle() == 1
    assert ups(client, org, "p1@example.com") == {}  # one purchase
    post(client, inlet, purchase(2, 1, T0 - dt.timedelta(days=1)))
    post(client, inlet, purchase(3, 2, T0 - dt.timedelta(days=40)))  # p2's two purchases: one is too old
    post(client, inlet, purchase(4, 2, T0 - dt.timedelta(hours=1)))
    assert consumers.segmenter.run_until_idle() == 3
    # p1 entered with no job; the same expression without the opt-in did not move.
    assert ups(client, org, "p1@example.com") == {
        opted["id"]: {"status": "realized", "lastQualificationTime": "2026-12-02T10:00:00Z"}}
    assert ups(client, org, "p2@example.com") == {}
    assert consumers.run_until_idle() == 4  # the four purchases flushed to the lake, the refresh requested
    drain()
    job = job_at(client, org, drain, monkeypatch, clock.now, opted["id"], plain["id"])
    assert job["metrics"]["openseg:streamingDrift"] == {
        opted["id"]: {"onlyBatch": 0, "onlyStream": 0, "baseline": False}}
    assert members(client, org, opted["id"]) == members(client, org, plain["id"]) == ["email:p1@example.com"]
    # 27 days and a minute later p1's first purchase is more than 30 days old: it exits with no event.
    clock.now = T0 + dt.timedelta(days=27, minutes=1)
    consumers.segmenter.run_until_idle()
    assert ups(client, org, "p1@example.com")[opted["id"]]["status"] == "exited"
    # The membership history has the exit at that time (the API's "now" is the wall clock's: ask for that time).
    after = client.get(f"{DEFINITIONS}/{opted['id']}/members", headers=org.headers(),
                       params={"at": "2026-12-29T10:01:00Z"}).json()
    assert after["members"] == [] and after["_page"]["totalCount"] == 0
