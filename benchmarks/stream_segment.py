"""``python -m benchmarks.stream_segment [N]``: acknowledgement -> continuous membership visible in
``/access/entities`` (streaming segmentation), with the streamer thread running on the real clock.

A fresh home with 2N+2 profiles (a batch and a build), one continuous definition (US and a page view within
the last hour), then N page views streamed one at a time to US profiles; for each, the time from the
acknowledgement until the profile's ``segmentMembership.ups`` holds the segment. Prints median, p90, max.
Uses the API test helpers (``tests/``): run it from the repository root.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from fastapi.testclient import TestClient
from tests.api.flows import create_dataset, person
from tests.api.test_segment_jobs import load_people
from tests.conftest import make_org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet, envelope

from openseg.api.app import create_app
from openseg.bootstrap import build_services, streamer
from openseg.config import Settings


def main() -> None:
    home = Path(tempfile.mkdtemp()) / "home"
    services = build_services(Settings(home=home, database_url=f"sqlite:///{home.parent / 'db.sqlite'}",
                                       lake=home / "lake"))
    client = TestClient(create_app(services, run_worker=False))
    client.__enter__()
    org = make_org(services)
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    load_people(client, org, services.worker.run_until_idle, [person(i) for i in range(2 * n + 2)])
    pql = ('homeAddress.country = "US" and xEvent[eventType = "web.webpagedetails.pageViews" and '
           'timestamp occurs <= 1 hours before now]')
    definition = {"name": "s", "schema": {"name": "_xdm.context.profile"},
                  "expression": {"type": "PQL", "format": "pql/text", "value": pql}}
    seg = client.post("/data/core/ups/segment/definitions", headers=org.headers(), json=definition).json()["id"]
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, events)["auth"]["params"]["inletId"]
    stop = threading.Event()
    thread = threading.Thread(target=streamer(services).run, args=(stop,), daemon=True)
    thread.start()
    lat = []
    for k in range(n):
        i = 2 * k + 1  # US profiles
        now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
        rec = {"_id": f"v{k}", "timestamp": now, "eventType": "web.webpagedetails.pageViews",
               "identityMap": {"email": [{"id": f"p{i}@example.com", "primary": True}]}}
        r = client.post(f"/collection/{inlet}", json=envelope(rec))
        assert r.status_code == 200, r.text
        acked = time.monotonic()
        while True:
            body = client.get("/data/core/ups/access/entities", headers=org.headers(), params={
                "schema.name": "_xdm.context.profile", "entityId": f"p{i}@example.com", "entityIdNS": "email"}).json()
            (e,) = body.values()
            if seg in ((e["entity"].get("segmentMembership") or {}).get("ups") or {}):
                break
            if time.monotonic() - acked > 30:
                raise SystemExit("not visible in 30 s")
            time.sleep(0.005)
        lat.append(time.monotonic() - acked)
    stop.set()
    thread.join(5)
    lat.sort()
    print(f"n={n} median={statistics.median(lat) * 1000:.0f} ms p90={lat[int(0.9 * (n - 1))] * 1000:.0f} ms "
          f"max={lat[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
