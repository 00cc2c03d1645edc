"""``python -m benchmarks.stream_expiry [N] [LEAD] [SPREAD]``: P5c, memberships expiring together exit in time.

A fresh home with N profiles in the US, each with one page view, their timestamps spread so that the views
leave "the last hour" over SPREAD seconds (default 60: the same minute), starting LEAD seconds after the
data is uploaded (default 120, room for the build and the baseline job at N = 100,000). A baseline job puts
all N in the continuous segment "US and a page view within the last hour"; then the streamer runs as
``openseg serve`` runs it (its own thread, the real clock, the due-time index in ``stream/due.sqlite``) and
is left alone: nothing is streamed. For each profile, the lag is its exit's ``lastQualificationTime`` minus
the time its view left the hour. Prints how many exited, and the lag's median, p99 and max
(target: all N exited, max ≤ 5 s). Uses the API test helpers (``tests/``): run it from the repository root.
"""

from __future__ import annotations

import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
from fastapi.testclient import TestClient
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.conftest import make_org
from tests.streaming.inlets import EVENT_SCHEMA

from openseg.api.app import create_app
from openseg.bootstrap import build_services, streamer
from openseg.config import Settings
from openseg.segmentation.membership import all_stores

PQL = ('homeAddress.country = "US" and xEvent[eventType = "web.webpagedetails.pageViews" and '
       "timestamp occurs <= 1 hours before now]")
WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Expiry:
    members: int
    exited: int
    lags: list[float]  # seconds from each exit's due time to its exit, sorted

    def line(self) -> str:
        if not self.lags:
            return f"members={self.members} exited=0"
        p99 = self.lags[min(len(self.lags) - 1, int(0.99 * len(self.lags)))]
        return (f"members={self.members} exited={self.exited} lag median={statistics.median(self.lags):.2f} s "
                f"p99={p99:.2f} s max={self.lags[-1]:.2f} s")


def _exits(home: Path) -> dict[str, dt.datetime]:
    """Each profile's exit time, from the membership stores' change files."""
    found: dict[str, dt.datetime] = {}
    for store in all_stores(home):
        with store.reading():
            for _, path in store.changes(None):
                for row in pq.read_table(path, columns=["_profile_id", "event", "at"]).to_pylist():
                    if row["event"] == "exited":
                        found[row["_profile_id"]] = row["at"].replace(tzinfo=dt.UTC) if row["at"].tzinfo is None \
                            else row["at"]
    return found


def measure(home: Path, n: int, lead: float = 120.0, spread: float = 60.0) -> Expiry:
    """Run P5c at ``n`` memberships in a fresh ``home`` (see the module docstring)."""
    services = build_services(Settings(home=home, database_url=f"sqlite:///{home.parent / 'db.sqlite'}",
                                       lake=home / "lake"))
    client = TestClient(create_app(services, run_worker=False))
    client.__enter__()
    stop = threading.Event()
    try:
        org = make_org(services)
        assert services.worker is not None
        first = dt.datetime.now(dt.UTC) - WINDOW + dt.timedelta(seconds=lead)
        seen = {f"email:p{2 * k + 1}@example.com": first + dt.timedelta(seconds=spread * k / max(n - 1, 1))
                for k in range(n)}
        people = create_dataset(client, org.headers())
        upload_batch(client, org.headers(), people, {"people.json": json_lines([person(2 * k + 1) for k in range(n)])})
        events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
        upload_batch(client, org.headers(), events, {"events.json": json_lines([
            {"_id": f"v{k}", "timestamp": seen[f"email:p{2 * k + 1}@example.com"].isoformat().replace("+00:00", "Z"),
             "eventType": "web.webpagedetails.pageViews",
             "identityMap": {"email": [{"id": f"p{2 * k + 1}@example.com", "primary": True}]}} for k in range(n)])})
        services.worker.run_until_idle()
        definition = {"name": "recent US viewers", "schema": {"name": "_xdm.context.profile"},
                      "expression": {"type": "PQL", "format": "pql/text", "value": PQL}}
        segment = client.post("/data/core/ups/segment/definitions", headers=org.headers(), json=definition).json()
        assert segment["evaluationInfo"]["continuous"]["enabled"] is True, segment
        job = client.post("/data/core/ups/segment/jobs", headers=org.headers(), json=[{"segmentId": segment["id"]}])
        services.worker.run_until_idle()
        done = client.get(f"/data/core/ups/segment/jobs/{job.json()['id']}", headers=org.headers()).json()
        members = int(done["metrics"]["segmentedProfileCounter"].get(segment["id"], 0))
        if dt.datetime.now(dt.UTC) > first + WINDOW:
            print(f"the baseline was late: raise LEAD above {lead:.0f} s", file=sys.stderr)
        thread = threading.Thread(target=streamer(services).run, args=(stop,), daemon=True)
        thread.start()
        last_due = first + WINDOW + dt.timedelta(seconds=spread)
        while dt.datetime.now(dt.UTC) < last_due + dt.timedelta(seconds=10):
            time.sleep(0.5)
        stop.set()
        thread.join(30)
        exits = _exits(home)
        lags = sorted((exits[p] - (t + WINDOW)).total_seconds() for p, t in seen.items() if p in exits)
        return Expiry(members, len(lags), lags)
    finally:
        stop.set()
        client.__exit__(None, None, None)
        services.db.dispose()


def p5c(n: int = 100_000, lead: float = 120.0, spread: float = 60.0) -> dict[str, float | int]:
    """P5c in a fresh temporary home, as ``make bench`` reports it: ``members``, ``exited``, and the lag's
    ``median_s``, ``p99_s`` and ``max_s`` (NaN when nobody exited)."""
    run = measure(Path(tempfile.mkdtemp(prefix="openseg-expiry-")) / "home", n, lead, spread)
    lags = run.lags or [float("nan")]
    return {"members": run.members, "exited": run.exited, "expected": n, "median_s": statistics.median(lags),
            "p99_s": lags[min(len(lags) - 1, int(0.99 * len(lags)))], "max_s": lags[-1]}


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    lead = float(sys.argv[2]) if len(sys.argv) > 2 else 120.0
    spread = float(sys.argv[3]) if len(sys.argv) > 3 else 60.0
    print(measure(Path(tempfile.mkdtemp()) / "home", n, lead, spread).line())


if __name__ == "__main__":
    main()
