"""The built-in web UI at ``/ui``: a page with only local assets, and the API answers its charts are drawn from."""

from __future__ import annotations

import re
from collections.abc import Callable
from html.parser import HTMLParser
from importlib.resources import files

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from openseg.api import ui
from openseg.api.app import create_app
from openseg.container import Services
from tests.api.aep import assert_aep_error, assert_gateway_error
from tests.api.flows import event, person
from tests.api.test_definitions import define
from tests.api.test_exports import export, union_dataset
from tests.api.test_segment_jobs import load_people, run_job
from tests.conftest import Org, make_org

ASSETS = {
    "/ui/ui.css": "text/css; charset=utf-8",
    "/ui/charts.js": "text/javascript; charset=utf-8",
    "/ui/ui.js": "text/javascript; charset=utf-8",
    "/ui/builder.js": "text/javascript; charset=utf-8",
}
#: The one absolute URL the scripts may hold: the SVG namespace, an identifier the browser never fetches.
SVG_NAMESPACE = "http://www.w3.org/2000/svg"


@pytest.fixture
def app(services: Services) -> FastAPI:
    """The API with the UI router, whether or not ``create_app`` includes it yet."""
    application = create_app(services, run_worker=False)
    if not any(getattr(route, "path", None) == "/ui" for route in application.routes):
        application.include_router(ui.router)
    return application


class _Page(HTMLParser):
    """The parts of the page the tests look at: referenced URLs, element ids, labels, form controls."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.ids: set[str] = set()
        self.label_targets: set[str] = set()
        self.controls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.urls.extend(v for k, v in attributes.items() if k in ("src", "href", "action") and v is not None)
        if attributes.get("id"):
            self.ids.add(str(attributes["id"]))
        if tag == "label" and attributes.get("for"):
            self.label_targets.add(str(attributes["for"]))
        if tag in ("input", "select", "textarea"):
            self.controls.append(str(attributes.get("id")))


def parse_page(client: TestClient) -> _Page:
    page = _Page()
    page.feed(client.get("/ui").text)
    return page


def test_page_is_served_without_credentials(client: TestClient) -> None:
    for path in ("/ui", "/ui/"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.text.startswith("<!doctype html>")
        assert "<title>openseg</title>" in response.text
        assert response.headers["content-security-policy"] == ui.CONTENT_SECURITY_POLICY
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["x-content-type-options"] == "nosniff"


def test_page_references_only_local_assets(client: TestClient) -> None:
    page = parse_page(client)
    assert sorted(page.urls) == sorted(ASSETS)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", client.get("/ui").text, re.IGNORECASE)
    for path in ASSETS:
        text = client.get(path).text
        assert set(re.findall(r"https?://[^\s\"'`)]+", text)) <= {SVG_NAMESPACE}, path
        assert "@import" not in text and "url(" not in text and "fetch(\"http" not in text, path
    # The browser enforces it too: only same-origin scripts, styles and API calls.
    assert "script-src 'self'" in ui.CONTENT_SECURITY_POLICY and "connect-src 'self'" in ui.CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in ui.CONTENT_SECURITY_POLICY


def test_assets_are_served_from_the_package(client: TestClient) -> None:
    static = files("openseg.api").joinpath("static")
    for path, media_type in ASSETS.items():
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["content-type"] == media_type
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == static.joinpath(path.removeprefix("/ui/")).read_bytes()


@pytest.mark.parametrize(("path", "detail"), [
    ("/ui/missing.js", "UI asset 'missing.js' was not found"),
    ("/ui/ui.py", "UI asset 'ui.py' was not found"),
    ("/ui/ui.html", "UI asset 'ui.html' was not found"),  # the page has one address: /ui
    ("/ui/..%2Fui.py", "no route matches GET /ui/../ui.py"),
    ("/ui/static/ui.js", "no route matches GET /ui/static/ui.js"),
])
def test_nothing_else_is_served(client: TestClient, path: str, detail: str) -> None:
    assert_aep_error(client.get(path), 404, detail_contains=detail)


def test_page_has_the_chart_areas_tables_and_labelled_inputs(client: TestClient) -> None:
    page = parse_page(client)
    assert {"chart-members", "chart-cost", "chart-durations", "chart-size", "chart-overlap"} <= page.ids
    assert {"members-caption", "cost-caption"} <= page.ids
    assert {"jobs-table", "definitions-table", "exports-table", "trend-segment", "status"} <= page.ids
    assert {"jobs-error", "definitions-error", "exports-error"} <= page.ids
    assert page.controls == ["cred-token", "cred-key", "cred-org", "cred-sandbox", "schema-search", "builder-name",
                             "builder-load", "builder-pql", "explain-id", "explain-ns", "trend-segment", "overlap-a",
                             "overlap-b"]
    assert {"builder-tree", "builder-estimate", "builder-dryrun", "builder-pql-error", "explain-result"} <= page.ids
    assert set(page.controls) <= page.label_targets
    html = client.get("/ui").text
    assert 'id="cred-sandbox" name="sandbox" type="text" required spellcheck="false" value="prod"' in html


def test_page_is_not_part_of_the_api_description(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


def _api_paths(script: str) -> list[str]:
    return re.findall(r'"(/data/[^"]+)"', script)


#: The lists ui.js loads on every refresh, in order.
LISTS = ["/data/core/ups/segment/definitions?limit=1000", "/data/core/ups/segment/jobs?limit=20",
         "/data/core/ups/segment/jobs?status=SUCCEEDED&limit=100", "/data/core/ups/export/jobs?limit=20"]


def test_the_script_sends_the_aep_headers_to_the_api_paths_it_names(client: TestClient) -> None:
    script = client.get("/ui/ui.js").text
    # The lists, then the bases of the membership history (.../{id}/members?at=) and of the overlap's previews.
    assert _api_paths(script) == [*LISTS, "/data/core/ups/segment/definitions", "/data/core/ups/preview"]
    # The builder: the union schema, definitions (save, dry run, explain), jobs, previews and estimates.
    assert _api_paths(client.get("/ui/builder.js").text) == [
        "/data/core/ups/segment/schema", "/data/core/ups/segment/definitions", "/data/core/ups/segment/jobs",
        "/data/core/ups/preview", "/data/core/ups/estimate"]
    for header in ("Authorization: `Bearer ", '"x-api-key"', '"x-gw-ims-org-id"', '"x-sandbox-name"'):
        assert header in script
    # What the page turns into plain words: AEP's `detail`, the gateway's `message`.
    assert "body.detail || body.message" in script
    # The cost chart reads openseg's extension of a job's metrics, and draws into its own area.
    assert '"openseg:segmentCost"' in script and '$("chart-cost")' in script
    for path in [*LISTS, "/data/core/ups/segment/schema"]:
        assert_gateway_error(client.get(path), 401, "401013")
    assert_gateway_error(client.post("/data/core/ups/preview", json={}), 401, "401013")


def test_the_answers_hold_what_the_charts_draw(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(i) for i in range(6)])  # odd i live in the US
    us = define(client, org, "US", 'homeAddress.country = "US"')
    rich = define(client, org, "rich", "loyalty.points >= 30")
    first = run_job(client, org, drain, us["id"], rich["id"])
    second = run_job(client, org, drain, us["id"])
    exported = export(client, org, drain, union_dataset(client, org),
                      filter={"segments": [{"segmentId": us["id"]}]})
    definitions, jobs, succeeded, exports = (client.get(p, headers=org.headers()).json()
                                            for p in LISTS)

    # Names, PQL and evaluation types of the definitions table.
    assert [(d["id"], d["name"], d["expression"]["value"]) for d in definitions["segments"]] == [
        (us["id"], "US", 'homeAddress.country = "US"'), (rich["id"], "rich", "loyalty.points >= 30")]
    assert all(d["evaluationInfo"]["batch"]["enabled"] is True for d in definitions["segments"])
    # The jobs table and the chart of members per segment, stacked by status, of the latest succeeded job.
    assert [j["id"] for j in jobs["children"]] == [second["id"], first["id"]]
    assert [j["id"] for j in succeeded["children"]] == [second["id"], first["id"]]
    latest = jobs["children"][0]["metrics"]
    assert latest["segmentedProfileCounter"] == {us["id"]: 3}
    assert latest["segmentedProfileByStatusCounter"] == {us["id"]: {"realized": 0, "existing": 3, "exited": 0}}
    assert first["metrics"]["segmentedProfileCounter"] == {us["id"]: 3, rich["id"]: 3}
    assert all(isinstance(j["metrics"]["totalTime"]["totalTimeInMs"], int) for j in jobs["children"])
    # The size-over-time line: one point per succeeded job that evaluated the segment, at its creation time.
    points = [(j["creationTime"], j["metrics"]["segmentedProfileCounter"].get(rich["id"]))
              for j in succeeded["children"]]
    assert points == [(second["creationTime"], None), (first["creationTime"], 3)]
    # The export table: status and destination batch.
    (record,) = exports["records"]
    assert record["id"] == exported["id"] and record["status"] == "SUCCEEDED"
    assert record["destination"]["batchId"] == exported["destination"]["batchId"]
    assert record["metrics"]["openseg:exportedProfiles"] == 3


def test_the_answers_hold_what_the_cost_chart_draws(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    # commerce.purchases and page views: profile 0 buys twice, profile 1 once and views once.
    events = [event(i, p) for i, p in [(0, 0), (3, 0), (6, 1), (1, 1)]]
    load_people(client, org, drain, [person(i) for i in range(6)], events)
    segments = [
        define(client, org, "US", 'homeAddress.country = "US"'),  # reads profiles only: the final stage
        define(client, org, "buyers", 'xEvent[eventType = "commerce.purchases"].count() >= 2'),
        define(client, org, "viewers", 'xEvent[eventType = "web.webpagedetails.pageViews"].count() >= 1'),
        # Another window: a scan of events of its own.
        define(client, org, "recent buyers",
               'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() > 0'),
    ]
    ids = [s["id"] for s in segments]
    job = run_job(client, org, drain, *ids)
    listed = client.get("/data/core/ups/segment/jobs?limit=20", headers=org.headers()).json()
    (charted,) = (j for j in listed["children"] if j["id"] == job["id"])

    # Per segment: its seconds, rows scanned (DuckDB reports them) and its stages, the final one last.
    cost = charted["metrics"]["openseg:segmentCost"]
    assert set(cost) == set(ids) == set(charted["metrics"]["segmentedProfileCounter"])
    for segment_id, entry in cost.items():
        assert entry["seconds"] > 0, segment_id
        assert isinstance(entry["rowsScanned"], int) and entry["rowsScanned"] > 0
        stages = entry["stages"]
        assert stages and all({"name", "relation", "seconds", "rows", "rowsScanned", "sharedBy"} <= set(s)
                              for s in stages)
        assert all(isinstance(s["sharedBy"], int) and 1 <= s["sharedBy"] <= len(ids) for s in stages)
        assert all(isinstance(s["seconds"], float | int) and s["seconds"] >= 0 for s in stages)
        final = stages[-1]
        assert (final["name"], final["relation"], final["sharedBy"]) == ("segments", "profiles", len(ids))
        assert [s["name"] for s in stages].count("segments") == 1
        # The chart's two stacks, as ui.js splits them, add up to the seconds it prints.
        own = sum(s["seconds"] for s in stages if s["sharedBy"] == 1 and s["name"] != "segments")
        shared = sum(s["seconds"] / s["sharedBy"] for s in stages if s["sharedBy"] > 1 or s["name"] == "segments")
        assert own + shared == pytest.approx(entry["seconds"], abs=1e-5)
    # Both stacks have something to draw: "buyers" and "viewers" share a scan of events, "recent buyers"
    # reads one alone; "US" pays only its share of the final stage.
    assert [s["name"] for s in cost[ids[0]]["stages"]] == ["segments"]
    assert all([(s["relation"], s["sharedBy"]) for s in cost[i]["stages"]][:-1] == [("events", 2)] for i in ids[1:3])
    assert [(s["relation"], s["sharedBy"]) for s in cost[ids[3]]["stages"]][:-1] == [("events", 1)]


def test_the_union_schema_lists_standard_and_tenant_fields_with_types(client: TestClient, org: Org, services: Services,
                                                                       drain: Callable[[], int]) -> None:
    schema = client.get("/data/core/ups/segment/schema", headers=org.headers())
    assert schema.status_code == 200
    before = schema.json()
    profile = {f["path"]: f for f in before["profile"]}
    assert profile["homeAddress.country"] == {"path": "homeAddress.country", "type": "string", "standard": True}
    assert profile["loyalty.points"]["type"] in ("integer", "number")
    assert not [f for f in before["profile"] + before["event"] if not f["standard"]]  # no data yet: standard XDM only
    assert {"path": "eventType", "type": "string", "standard": True} in before["event"]
    assert {"path": "productListItems", "type": "array of objects", "standard": True} in before["event"]

    # A batch with a tenant field group: its fields appear, typed from the data, marked as not standard.
    load_people(client, org, drain, [person(i, _acme={"householdSize": i, "interests": ["golf"]}) for i in range(3)])
    after = client.get("/data/core/ups/segment/schema", headers=org.headers()).json()
    tenant = [f for f in after["profile"] if not f["standard"]]
    assert tenant == [{"path": "_acme.householdSize", "type": "integer", "standard": False},
                      {"path": "_acme.interests", "type": "array of strings", "standard": False}]
    assert len(after["profile"]) == len(before["profile"]) + 2
    # Another org sees none of them.
    other = make_org(services)
    assert not [f for f in client.get("/data/core/ups/segment/schema", headers=other.headers()).json()["profile"]
                if not f["standard"]]
