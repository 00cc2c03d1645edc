"""A streaming segment on the page: its members now, read again while the page stays open, move as events arrive,
with no job and no reload; its size over time ends with that point."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from openseg.demo import EVENTS_DATASET, STREAMED_VIEWS, STREAMING_SEGMENT
from openseg.demo_data import profiles
from tests.ui.conftest import SCREENSHOTS, Demo

pytestmark = pytest.mark.xdist_group("browser")

DEFINITIONS = "/data/core/ups/segment/definitions"
CONNECTIONS = "/data/foundation/flowservice/connections"
EVENT_SCHEMA = "https://ns.adobe.com/xdm/context/experienceevent"
STREAMING_SPEC = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb"
#: The demo profile whose product view this test streams: not one of those the demo streams at each start.
VIEWER = STREAMED_VIEWS + 7


def _status(demo: Demo, email: str, segment_id: str) -> str | None:
    """The profile's status in the segment, as ``/access/entities`` shows it (None: not in it)."""
    found = httpx.get(f"{demo.base}/data/core/ups/access/entities", headers=demo.headers(), timeout=30, params={
        "schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "email"})
    assert found.status_code == 200, found.text
    (body,) = found.json().values()
    ups: dict[str, Any] = body["entity"].get("segmentMembership", {}).get("ups", {})
    return ups.get(segment_id, {}).get("status")


def _wait(condition: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen within {seconds:.0f} s"
        time.sleep(0.2)


def test_a_streaming_segments_members_move_on_the_page_as_events_arrive(page: Page, demo: Demo) -> None:
    segment = demo.definition_named(STREAMING_SEGMENT)
    assert segment["evaluationInfo"]["continuous"]["enabled"] is True
    # The server's streamer takes in the views the demo streamed at its start.
    emails = [p["identityMap"]["email"][0]["id"] for p in profiles(VIEWER + 1)]
    _wait(lambda: all(_status(demo, email, segment["id"]) in ("realized", "existing")
                      for email in emails[:STREAMED_VIEWS]), "the demo's streamed views entering the segment")
    viewer = emails[VIEWER]
    assert _status(demo, viewer, segment["id"]) is None

    def members() -> int:
        return int(demo.call("GET", f"{DEFINITIONS}/{segment['id']}/members?limit=1")["_page"]["totalCount"])

    before = members()
    page.click("#refresh")
    row = page.locator(f'#definitions-table tr[data-segment-id="{segment["id"]}"]')
    expect(row.locator(".live-count")).to_have_text(f"{before:,}")
    expect(row.locator(".live-members .cell-note")).to_contain_text("now (streaming)")
    # A segment that does not stream shows the latest job's count.
    listed = demo.call("GET", f"{DEFINITIONS}?limit=1000")["segments"]
    batch = next(d for d in listed if not d["evaluationInfo"]["continuous"]["enabled"])
    batch_row = page.locator(f'#definitions-table tr[data-segment-id="{batch["id"]}"]')
    expect(batch_row.locator("td.num")).not_to_have_text("—")
    expect(batch_row.locator(".live-count")).to_have_count(0)
    page.select_option("#trend-segment", segment["id"])
    chart = page.locator("#chart-size svg")
    expect(chart.locator("circle.live-point")).to_have_count(1)
    expect(chart.locator(".size-value").last).to_have_text(f"{before:,}")
    jobs = chart.locator("circle.size-point").count() - 1
    expect(chart.locator("rect.flow-bar")).to_have_count(2 * jobs)  # columns for the jobs only, none for now

    # A product view streamed through an inlet of the demo's events dataset, as a web site would send it: no job,
    # no reload.
    (dataset_id,) = [key for key, dataset in demo.call("GET", "/data/foundation/catalog/dataSets?limit=100").items()
                     if dataset["name"] == EVENTS_DATASET]
    created = demo.call("POST", CONNECTIONS, {
        "name": "UI test views", "connectionSpec": {"id": STREAMING_SPEC, "version": "1.0"},
        "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm", "datasetId": dataset_id}}})
    (connection,) = demo.call("GET", f"{CONNECTIONS}/{created['id']}")["items"]
    view = {"_id": f"ui-view-{time.time_ns()}", "eventType": "commerce.productViews",
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "identityMap": {"email": [{"id": viewer, "primary": True}]}}
    sent = httpx.post(f"{demo.base}/collection/{connection['auth']['params']['inletId']}", headers=demo.headers(),
                      json={"header": {"schemaRef": {"id": EVENT_SCHEMA}}, "body": {"xdmEntity": view}}, timeout=30)
    assert sent.status_code == 200, sent.text
    _wait(lambda: _status(demo, viewer, segment["id"]) == "realized", "the streamed view entering the segment")
    assert members() == before + 1
    # The page reads the streaming segment's members again by itself: the row and the chart's last point move.
    expect(row.locator(".live-count")).to_have_text(f"{before + 1:,}", timeout=15_000)
    expect(chart.locator(".size-value").last).to_have_text(f"{before + 1:,}", timeout=15_000)
    expect(chart.locator("circle.live-point")).to_have_count(1)
    expect(page.locator("#trend-caption")).to_contain_text("the segment streams")
    page.locator("#definitions-section").screenshot(path=str(SCREENSHOTS / "streaming.png"))


def test_a_definition_opted_in_to_streaming_is_marked_and_shows_its_members_now(page: Page, demo: Demo) -> None:
    pql = 'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 2'
    created = demo.call("POST", DEFINITIONS, {"name": "Bought twice in 30 days, streamed",
                                              "schema": {"name": "_xdm.context.profile"}, "openseg:streamingOptIn": True,
                                              "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
    assert created["evaluationInfo"]["continuous"]["enabled"] is False  # AEP's answer: not streamable
    members = demo.call("GET", f"{DEFINITIONS}/{created['id']}/members?limit=1")["_page"]["totalCount"]
    page.click("#refresh")
    row = page.locator(f'#definitions-table tr[data-segment-id="{created["id"]}"]')
    expect(row.locator(".badge")).to_have_text(["batch", "streaming (opt-in)"])
    expect(row.locator(".live-count")).to_have_text(f"{members:,}")
