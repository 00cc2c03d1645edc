"""The charts in a real browser: audience size over time with entries and exits, overlap, cost per segment."""

from __future__ import annotations

import time

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.ui.conftest import SCREENSHOTS, Demo

pytestmark = pytest.mark.xdist_group("browser")

DEFINITIONS = "/data/core/ups/segment/definitions"


def _pql(value: str) -> dict:
    return {"expression": {"type": "PQL", "format": "pql/text", "value": value}}


def test_size_over_time_with_entries_and_exits(page: Page, demo: Demo) -> None:
    # One segment, three jobs, each after a change of its threshold: it grows, then shrinks. A batch segment (not
    # streaming): its chart is its jobs' (tests/ui/test_streaming.py draws a streaming one's, which ends with now).
    batch_only = {"evaluationInfo": {"continuous": {"enabled": False}}}
    segment = demo.call("POST", DEFINITIONS, {"name": "Points over time", "schema": {"name": "_xdm.context.profile"},
                                              **_pql("loyalty.points >= 15000"), **batch_only})
    jobs = []
    for threshold in (15000, 10000, 12000):
        demo.call("PATCH", f"{DEFINITIONS}/{segment['id']}", {**_pql(f"loyalty.points >= {threshold}"), **batch_only})
        jobs.append(demo.run_job(segment["id"]))
    sizes = [j["metrics"]["segmentedProfileCounter"][segment["id"]] for j in jobs]
    flows = [j["metrics"]["segmentedProfileByStatusCounter"][segment["id"]] for j in jobs]
    assert sizes[0] < sizes[1] > sizes[2] and flows[1]["realized"] > 0 and flows[2]["exited"] > 0

    page.click("#refresh")
    page.select_option("#trend-segment", segment["id"])
    chart = page.locator("#chart-size svg")
    expect(chart.locator(".chart-title")).to_have_text("Members of “Points over time” over time")
    # One point per job, the size from the membership history at the job's end: the job's own count.
    expect(chart.locator(".size-value")).to_have_text([f"{n:,}" for n in sizes])
    expect(chart.locator("circle.size-point")).to_have_count(3)
    # Entries above the zero line, exits below, a number for each that is not zero.
    expect(chart.locator(".series-entered-text")).to_have_text([f"+{f['realized']:,}" for f in flows if f["realized"]])
    expect(chart.locator(".series-exited-text")).to_have_text([f"−{f['exited']:,}" for f in flows if f["exited"]])
    expect(chart.locator("rect.flow-bar")).to_have_count(6)
    page.locator("#trend-section").screenshot(path=str(SCREENSHOTS / "size-over-time.png"))


def test_overlap_of_two_segments(page: Page, demo: Demo) -> None:
    us = demo.definition_named("US residents")
    gold = demo.definition_named("Gold and platinum members")
    both = demo.definition_named("US gold and platinum")  # inSegment(US) and inSegment(gold), evaluated by the demo
    members = {d["id"]: demo.call("GET", f"{DEFINITIONS}/{d['id']}/members?limit=1")["_page"]["totalCount"]
               for d in (us, gold, both)}
    previews: list[str] = []
    page.on("response", lambda r: previews.append(r.json()["previewId"])
            if r.request.method == "POST" and r.url.endswith("/data/core/ups/preview") else None)
    page.select_option("#overlap-a", us["id"])
    page.select_option("#overlap-b", gold["id"])
    chart = page.locator("#chart-overlap svg")
    expect(chart.locator(".chart-title")).to_have_text("Overlap of “US residents” and “Gold and platinum members”")
    shared = members[both["id"]]
    assert 0 < shared < min(members[us["id"]], members[gold["id"]])
    expect(chart.locator(".overlap-value")).to_have_text([
        f"{members[us['id']] - shared:,} only A", f"{shared:,} both", f"{members[gold['id']] - shared:,} only B"])
    page.locator("#overlap-section").screenshot(path=str(SCREENSHOTS / "overlap.png"))
    # The page deletes each preview once it has read its count.
    assert previews
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_exists(demo, p) for p in previews):
        time.sleep(0.1)
    assert not [p for p in previews if _exists(demo, p)]


def _exists(demo: Demo, preview_id: str) -> bool:
    response = httpx.get(f"{demo.base}/data/core/ups/preview/{preview_id}", headers=demo.headers())
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def test_cost_per_segment(page: Page, demo: Demo) -> None:
    job = demo.run_job("*")  # every segment, so each has its share of one plan
    page.click("#refresh")
    page.locator(f'#jobs-table tr:has(code[title="{job["id"]}"]) button').click()
    names = {d["id"]: d["name"] for d in demo.call("GET", f"{DEFINITIONS}?limit=1000")["segments"]}
    cost = job["metrics"]["openseg:segmentCost"]
    assert len(cost) == len(names) >= 5
    chart = page.locator("#chart-cost svg")
    expect(chart.locator(".chart-title")).to_have_text(f"Cost per segment, job {job['id'][:8]}…")
    # A bar per segment, costliest first, each with its share of the final stage that all of them share.
    ranked = sorted(cost, key=lambda i: (-cost[i]["seconds"], names[i]))
    expect(chart.locator(".bar-label title")).to_have_text([names[i] for i in ranked])
    expect(chart.locator("rect.bar.series-shared")).to_have_count(len(cost))
    page.locator("#cost-section").screenshot(path=str(SCREENSHOTS / "cost.png"))
