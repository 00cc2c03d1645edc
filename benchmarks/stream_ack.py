"""``python -m benchmarks.stream_ack``: how long ``POST /collection/{inletId}`` takes to acknowledge (P5a).

Starts ``openseg serve`` in its own process on a fresh home (with its worker and streamer, as ``make run``),
creates an events dataset and an inlet, then sends single messages **open-loop** at ``STREAM_RATE`` per
second for ``STREAM_SECONDS``: each request has a scheduled start, and its latency runs from that start (so a
backlog counts against the server, not hidden by a slow client). Prints p50 / p99 / max of the
acknowledgements, then waits for the streamer and checks that every acknowledged message is in the lake
exactly once.

Environment: ``STREAM_RATE`` (500), ``STREAM_SECONDS`` (20), ``STREAM_CLIENTS`` (32 sending threads).
"""

from __future__ import annotations

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import pyarrow.parquet as pq

from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.store.tenancy import issue_credentials

EVENTS = "https://ns.adobe.com/xdm/context/experienceevent"


def _message(i: int) -> dict[str, object]:
    ref = {"id": EVENTS, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    return {"header": {"schemaRef": ref}, "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": {
        "_id": f"bench-{i}", "timestamp": "2026-12-01T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
        "identityMap": {"email": [{"id": f"p{i % 1000}@example.com", "primary": True}]},
        "web": {"webPageDetails": {"name": f"page {i % 50}"}}}}}


def _visibility(base: str, headers: dict[str, str]) -> None:
    """Acknowledged profile fragment -> visible in ``/access/entities`` (flush + incremental refresh), one
    fragment at a time over a small store; the first builds the store and is not counted."""
    profile = "https://ns.adobe.com/xdm/context/profile"
    dataset = httpx.post(f"{base}/data/foundation/catalog/dataSets", headers=headers, json={
        "name": "people", "schemaRef": {"id": profile}, "tags": {"unifiedProfile": ["enabled:true"]}}).json()
    dataset = dataset[0].split("/")[-1]
    connection = httpx.post(f"{base}/data/foundation/flowservice/connections", headers=headers, json={
        "name": "people", "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
        "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm", "datasetId": dataset}}}).json()
    item = httpx.get(f"{base}/data/foundation/flowservice/connections/{connection['id']}", headers=headers).json()
    url = item["items"][0]["auth"]["params"]["inletUrl"]
    waits = []
    for i in range(11):
        message = {"header": {"schemaRef": {"id": profile}}, "body": {"xdmEntity": {
            "identityMap": {"email": [{"id": f"v{i}@example.com", "primary": True}]}, "loyalty": {"points": i}}}}
        acknowledged = time.monotonic()
        assert httpx.post(url, json=message).status_code == 200
        while time.monotonic() - acknowledged < 60:
            found = httpx.get(f"{base}/data/core/ups/access/entities", headers=headers, params={
                "schema.name": "_xdm.context.profile", "entityId": f"v{i}@example.com", "entityIdNS": "email"})
            if found.status_code == 200:
                break
            time.sleep(0.02)
        if i:
            waits.append(time.monotonic() - acknowledged)
    waits.sort()
    print(f"ack -> visible in /access/entities (10 fragments, one at a time): median "
          f"{statistics.median(waits) * 1000:.0f} ms, max {waits[-1] * 1000:.0f} ms")


def main() -> None:
    rate = float(os.environ.get("STREAM_RATE", "500"))
    seconds = float(os.environ.get("STREAM_SECONDS", "20"))
    clients = int(os.environ.get("STREAM_CLIENTS", "32"))
    home = Path(tempfile.mkdtemp(prefix="openseg-stream-bench-"))
    settings = Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake")
    services = build_services(settings)
    with services.db.session() as session:
        issued = issue_credentials(session, "BENCH@AdobeOrg", "prod")
    headers = {"Authorization": f"Bearer {issued.access_token}", "x-api-key": issued.api_key,
               "x-gw-ims-org-id": "BENCH@AdobeOrg"}
    port = 18000 + os.getpid() % 1000
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "OPENSEG_HOME": str(home), "OPENSEG_DATABASE_URL": settings.database_url,
           "OPENSEG_LAKE": str(settings.lake)}
    server = subprocess.Popen([str(Path(sys.executable).parent / "openseg"), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        dataset = httpx.post(f"{base}/data/foundation/catalog/dataSets", headers=headers,
                             json={"name": "clicks", "schemaRef": {"id": EVENTS}}).json()[0].split("/")[-1]
        connection = httpx.post(f"{base}/data/foundation/flowservice/connections", headers=headers, json={
            "name": "bench", "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
            "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm", "datasetId": dataset}}}).json()
        item = httpx.get(f"{base}/data/foundation/flowservice/connections/{connection['id']}", headers=headers).json()
        url = item["items"][0]["auth"]["params"]["inletUrl"]
        total = int(rate * seconds)
        latencies: list[float] = []
        failures: list[int] = []
        counter = itertools.count()
        lock = threading.Lock()
        start = time.monotonic() + 0.5

        def send() -> None:
            with httpx.Client(timeout=30) as http:
                while (i := next(counter)) < total:
                    scheduled = start + i / rate
                    delay = scheduled - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    response = http.post(url, json=_message(i))
                    took = time.monotonic() - scheduled
                    with lock:
                        (latencies if response.status_code == 200 else failures).append(took)

        threads = [threading.Thread(target=send) for _ in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - start
        latencies.sort()
        p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
        print(f"acknowledged {len(latencies)} of {total} single messages in {elapsed:.1f} s "
              f"({len(latencies) / elapsed:.0f}/s offered {rate:.0f}/s), {len(failures)} failed")
        print(f"ack latency ms: p50 {p(0.5):.1f}  p90 {p(0.9):.1f}  p99 {p(0.99):.1f}  max {latencies[-1] * 1000:.1f}"
              f"  mean {statistics.mean(latencies) * 1000:.1f}")
        deadline = time.monotonic() + 60
        ids: list[str] = []
        while time.monotonic() < deadline:
            ids = [r for f in sorted((settings.lake).rglob("part-*.parquet"))
                   for r in pq.read_table(f, columns=["_id"]).column("_id").to_pylist()]
            if len(ids) >= len(latencies):
                break
            time.sleep(0.5)
        print(f"lake: {len(ids)} records, {len(set(ids))} distinct (expected {len(latencies)})")
        _visibility(base, headers)
    finally:
        server.terminate()
        server.wait(30)
        services.db.dispose()


if __name__ == "__main__":
    main()
