"""One demo server and one Chromium per test process for the browser tests (session fixtures).

The tests are marked ``xdist_group("browser")`` so that ``--dist loadgroup`` sends them all to one worker.
(With pytest 9.2 and pytest-xdist 3.8 the group has no effect: xdist renames ``item._nodeid``, which pytest 9
no longer reads; a second worker that draws one of them then starts its own server and browser, about 10 s.)

Chromium is Debian's (``make browser`` installs it); nothing is downloaded at test time. Without it the
tests fail, naming the make target: they never skip.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.demo import ensure_demo
from tests.e2e.server import running_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Where the screenshots of docs/ui.md are written.
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "ui"
#: A small demo: enough profiles and events for every kind of condition to select some and not others.
PROFILES = 400
EVENTS = 4000


@dataclass(frozen=True)
class Demo:
    """The running demo server and the demo org's credentials."""

    base: str
    token: str
    api_key: str
    org: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "x-api-key": self.api_key, "x-gw-ims-org-id": self.org,
                "x-sandbox-name": "prod"}

    def call(self, method: str, path: str, json: Any = None) -> Any:
        """Call the API; the answer's JSON (asserting a 2xx)."""
        response = httpx.request(method, f"{self.base}{path}", headers=self.headers(), json=json, timeout=60)
        assert response.is_success, response.text
        return response.json() if response.content else None

    def run_job(self, *segment_ids: str) -> dict[str, Any]:
        """Start a segment job and wait for it to succeed."""
        job = self.call("POST", "/data/core/ups/segment/jobs", [{"segmentId": s} for s in segment_ids])
        deadline = time.monotonic() + 120
        while job["status"] not in ("SUCCEEDED", "FAILED", "CANCELLED") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = self.call("GET", f"/data/core/ups/segment/jobs/{job['id']}")
        assert job["status"] == "SUCCEEDED", job
        return dict(job)

    def definition_named(self, name: str) -> dict[str, Any]:
        (found,) = [d for d in self.call("GET", "/data/core/ups/segment/definitions?limit=1000")["segments"]
                    if d["name"] == name]
        return dict(found)

    @property
    def ui_url(self) -> str:
        return f"{self.base}/ui#token={self.token}&key={self.api_key}&org={self.org}&sandbox=prod"


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``openseg serve --demo`` on a small data set, served by a real uvicorn with its worker thread."""
    home = tmp_path_factory.mktemp("ui") / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{home.parent / 'openseg.db'}", lake=home / "lake")
    services = build_services(settings)
    issued = ensure_demo(services, print_to=lambda _: None, profile_count=PROFILES, event_count=EVENTS)
    try:
        with running_server(services) as base:
            yield Demo(base, issued["accessToken"], issued["apiKey"], issued["imsOrgId"])
    finally:
        services.db.dispose()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium package")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


def _expected_refusal(status: int, url: str) -> bool:
    """The browser asks for a favicon the page does not have; previews of PQL typed wrong answer 400."""
    return url.endswith("/favicon.ico") or (status == 400 and url.endswith("/data/core/ups/preview"))


@pytest.fixture
def page(browser: Browser, demo: Demo) -> Iterator[Page]:
    """The UI, signed in to the demo org; the test fails on any script error or refused load (CSP)."""
    context = browser.new_context(viewport={"width": 1360, "height": 900}, color_scheme="light")
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    # A refused request is logged twice: as a console error (without its URL) and as a response.
    opened.on("console", lambda message: problems.append(f"console: {message.text}")
              if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    opened.on("response", lambda response: problems.append(f"HTTP {response.status}: {response.url}")
              if response.status >= 400 and not _expected_refusal(response.status, response.url) else None)
    opened.goto(demo.ui_url)
    yield opened
    context.close()
    assert problems == []
