"""``python -m benchmarks.edge_interact``: how long ``POST /ee/v2/interact`` takes to answer (P5b).

Starts ``openseg serve`` in its own process on a fresh home (with its worker and streamer, as ``make run``),
loads ``EDGE_PROFILES`` profiles by batch ingestion under a merge policy active on edge, defines ten edge
(synchronous) segments (five profile-only, five a single event within the hour beside a profile attribute),
makes a datastream, and waits for the policy's profile store. Then sends interact calls **open-loop** at
``EDGE_RATE`` per second for ``EDGE_SECONDS``, one event of a random known profile each: a request's latency
runs from its scheduled start, so a backlog counts against the server. Prints the first call's latency (AEP
warns of cold starts), p50 / p90 / p99 / max, and how many answers named at least one segment.

The target (issue 16, P5b) is p99 <= 50 ms at 100 req/s *during* P5 (500 streamed events/s over 1M
profiles); this script measures the edge alone, over the store it loads.

Environment: ``EDGE_PROFILES`` (10000), ``EDGE_RATE`` (100), ``EDGE_SECONDS`` (20), ``EDGE_CLIENTS`` (16).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.store.tenancy import issue_credentials

PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENTS = "https://ns.adobe.com/xdm/context/experienceevent"
COUNTRIES = ("US", "FR", "DE", "JP", "BR")
EVENT_TYPES = ("commerce.checkouts", "commerce.productViews", "web.webpagedetails.pageViews")


def _segments() -> list[str]:
    profile_only = [f'homeAddress.country = "{c}"' for c in COUNTRIES]
    with_event = [f'homeAddress.country = "{c}" and xEvent[eventType = "{t}" and timestamp occurs <= 1 hours '
                  'before now]' for c, t in zip(COUNTRIES, itertools.cycle(EVENT_TYPES), strict=False)]
    return profile_only + with_event


def _wait(base: str) -> None:
    for _ in range(300):
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the server did not start")


def _setup(base: str, headers: dict[str, str], profiles: int) -> str:
    """The sandbox of the benchmark; returns the datastream id once the edge policy's store is built."""
    policy = httpx.post(f"{base}/data/core/ups/config/mergePolicies", headers=headers, json={
        "name": "edge", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
        "schema": {"name": "_xdm.context.profile"}, "isActiveOnEdge": True}).json()["id"]
    people = httpx.post(f"{base}/data/foundation/catalog/dataSets", headers=headers, json={
        "name": "people", "schemaRef": {"id": PROFILE}, "tags": {"unifiedProfile": ["enabled:true"]}}).json()
    people = people[0].split("/")[-1]
    events = httpx.post(f"{base}/data/foundation/catalog/dataSets", headers=headers, json={
        "name": "web", "schemaRef": {"id": EVENTS}, "tags": {"unifiedProfile": ["enabled:true"]}}).json()
    events = events[0].split("/")[-1]
    batch = httpx.post(f"{base}/data/foundation/import/batches", headers=headers,
                       json={"datasetId": people, "inputFormat": {"format": "json"}}).json()["id"]
    lines = "\n".join(json.dumps({"identityMap": {"email": [{"id": f"p{i}@example.com", "primary": True}]},
                                  "homeAddress": {"country": COUNTRIES[i % len(COUNTRIES)]}})
                      for i in range(profiles))
    httpx.put(f"{base}/data/foundation/import/batches/{batch}/datasets/{people}/files/people.json",
              headers={**headers, "Content-Type": "application/octet-stream"}, content=lines.encode(), timeout=300)
    httpx.post(f"{base}/data/foundation/import/batches/{batch}?action=COMPLETE", headers=headers)
    for i, pql in enumerate(_segments()):
        created = httpx.post(f"{base}/data/core/ups/segment/definitions", headers=headers, json={
            "name": f"edge {i}", "mergePolicyId": policy, "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": pql}}).json()
        assert created["evaluationInfo"]["synchronous"]["enabled"], created
    datastream = httpx.post(f"{base}/data/core/edge/datastreams", headers=headers,
                            json={"name": "bench", "datasetId": events}).json()["id"]
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        found = httpx.get(f"{base}/data/core/ups/config/mergePolicies/{policy}", headers=headers).json()
        if (found.get("openseg:profileStore") or {}).get("profiles") == profiles:
            return str(datastream)
        time.sleep(0.5)
    raise SystemExit("the edge policy's profile store was not built in time")


def _event(i: int, profiles: int, rng: random.Random) -> dict[str, object]:
    at = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"event": {"xdm": {
        "identityMap": {"email": [{"id": f"p{rng.randrange(profiles)}@example.com", "primary": True}]},
        "_id": f"edge-{i}", "eventType": EVENT_TYPES[i % len(EVENT_TYPES)], "timestamp": at}}}


def main() -> None:
    profiles = int(os.environ.get("EDGE_PROFILES", "10000"))
    rate = float(os.environ.get("EDGE_RATE", "100"))
    seconds = float(os.environ.get("EDGE_SECONDS", "20"))
    clients = int(os.environ.get("EDGE_CLIENTS", "16"))
    home = Path(tempfile.mkdtemp(prefix="openseg-edge-bench-"))
    settings = Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake")
    services = build_services(settings)
    with services.db.session() as session:
        issued = issue_credentials(session, "BENCH@AdobeOrg", "prod")
    headers = {"Authorization": f"Bearer {issued.access_token}", "x-api-key": issued.api_key,
               "x-gw-ims-org-id": "BENCH@AdobeOrg"}
    port = 19000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OPENSEG_HOME": str(home), "OPENSEG_DATABASE_URL": settings.database_url,
           "OPENSEG_LAKE": str(settings.lake)}
    server = subprocess.Popen([str(Path(sys.executable).parent / "openseg"), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(base)
        datastream = _setup(base, headers, profiles)
        url = f"{base}/ee/v2/interact?dataStreamId={datastream}"
        rng = random.Random(16)
        first = time.monotonic()
        answer = httpx.post(url, headers=headers, json=_event(0, profiles, rng), timeout=30)
        assert answer.status_code == 200, answer.text
        print(f"{profiles:,} profiles, {len(_segments())} edge segments; first interact "
              f"{(time.monotonic() - first) * 1000:.1f} ms")
        total = int(rate * seconds)
        latencies: list[float] = []
        failures: list[str] = []
        qualified = 0
        counter = itertools.count(1)
        lock = threading.Lock()
        start = time.monotonic() + 0.5

        def send() -> None:
            nonlocal qualified
            local = random.Random(threading.get_ident())
            with httpx.Client(timeout=30, headers=headers) as http:
                while (i := next(counter)) <= total:
                    scheduled = start + (i - 1) / rate
                    delay = scheduled - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    response = http.post(url, json=_event(i, profiles, local))
                    took = time.monotonic() - scheduled
                    with lock:
                        if response.status_code != 200:
                            failures.append(f"{response.status_code} {response.text[:200]}")
                            continue
                        latencies.append(took)
                        payload = response.json()["handle"][0]["payload"]
                        qualified += bool(payload and payload[0]["segments"])

        threads = [threading.Thread(target=send) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        print(f"answered {len(latencies)} of {total} interact calls in {elapsed:.1f} s "
              f"({len(latencies) / elapsed:.0f}/s offered {rate:.0f}/s), {len(failures)} failed, "
              f"{qualified} naming a segment")
        print(f"interact latency ms: p50 {p(0.5):.1f}  p90 {p(0.9):.1f}  p99 {p(0.99):.1f}  "
              f"max {latencies[-1] * 1000:.1f}  mean {statistics.mean(latencies) * 1000:.1f}  (target p99 <= 50)")
        for failure in failures[:5]:
            print("failed:", failure)
    finally:
        server.terminate()
        server.wait(30)
        services.db.dispose()


if __name__ == "__main__":
    main()
