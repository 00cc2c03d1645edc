"""P6b: the service's everyday calls stay quick, and no job is lost, while jobs and exports run.

A real ``openseg serve`` process over a fresh home is loaded with the data set (batch API), the 10-segment
suite is defined and a first segment job runs to the end. Then, for ``SECONDS`` seconds, two drivers keep
work running back to back (a segment job of the suite, and an export of one segment's members to a
dataset), while ``CLIENTS`` clients each make one call a second, cycling through the calls in
:data:`ROUTES` (job and export status, lookups, lists, a definition, merge policies). Every latency is kept
per route. At the end the drivers stop queueing, and every job and export they started must end
``SUCCEEDED`` within a grace period: a job still running then is reported as stuck.

Run alone with ``python -m benchmarks.mixed`` (``BENCH_SIZE``, ``BENCH_SEED`` as for ``make bench``;
``MIXED_SECONDS`` for the window, default 60; ``make bench`` reads it too; ``MIXED_SEPARATE_WORKER=1`` runs
the jobs in an ``openseg worker`` process of its own, at ``nice`` ``MIXED_WORKER_NICE`` (10), beside
``openseg serve --no-worker``). The processes' log is kept in the home, ``serve.log``.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

from benchmarks.generate import Manifest
from benchmarks.load import (
    EVENT,
    FINAL,
    PROFILE,
    _credentials,
    _define,
    _free_port,
    _upload,
    _wait_until_up,
    check_batches,
)
from benchmarks.segments import Segment

CLIENTS = 50
SECONDS = 60.0
#: Seconds the jobs and exports started in the window have to finish once it closes.
GRACE = 300.0
JOBS = "/data/core/ups/segment/jobs"
EXPORTS = "/data/core/ups/export/jobs"

#: The calls each client cycles through: a label and the request's path (``{job}``, ``{export}``,
#: ``{segment}``, ``{entity}`` filled in) and query.
ROUTES: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("GET /segment/jobs/{id}", "/data/core/ups/segment/jobs/{job}", {}),
    ("GET /access/entities", "/data/core/ups/access/entities",
     {"schema.name": "_xdm.context.profile", "entityId": "{entity}", "entityIdNS": "CRMID"}),
    ("GET /segment/definitions", "/data/core/ups/segment/definitions", {"limit": "10"}),
    ("GET /segment/definitions/{id}", "/data/core/ups/segment/definitions/{segment}", {}),
    ("GET /export/jobs/{id}", "/data/core/ups/export/jobs/{export}", {}),
    ("GET /segment/jobs", "/data/core/ups/segment/jobs", {"limit": "10"}),
    ("GET /catalog/batches", "/data/foundation/catalog/batches", {"limit": "10"}),
    ("GET /config/mergePolicies", "/data/core/ups/config/mergePolicies", {}),
)


def mixed_under_load(data_dir: Path, manifest: Manifest, segments: Sequence[Segment], clients: int = CLIENTS,
                     seconds: float | None = None) -> dict[str, Any]:
    """Serve a fresh home, load the data set, and run the mixed calls while jobs and exports run (see the
    module docstring).

    Returns:
        ``routes``: label -> ``{p50_ms, p99_ms, requests, errors}``; ``requests`` and ``errors`` in all;
        ``jobs`` and ``exports``: how many of each ran in the window, with ``failed`` and ``stuck`` counts.
    """
    seconds = seconds if seconds is not None else float(os.environ.get("MIXED_SECONDS", SECONDS))
    home = Path(tempfile.mkdtemp(prefix="openseg-mixed-"))
    headers = _credentials(home)
    port = _free_port()
    env = {**os.environ, "OPENSEG_HOME": str(home)}
    openseg = str(Path(sys.executable).with_name("openseg"))
    log = (home / "serve.log").open("wb")
    separate = os.environ.get("MIXED_SEPARATE_WORKER") == "1"
    server = subprocess.Popen([openseg, "serve", "--home", str(home), "--port", str(port)]
                              + (["--no-worker"] if separate else []), env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    worker = subprocess.Popen(["nice", "-n", os.environ.get("MIXED_WORKER_NICE", "10"), openseg, "worker",
                               "--home", str(home)], env=env, stdout=log,
                              stderr=subprocess.STDOUT) if separate else None
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            _wait_until_up(client)
            ids: dict[str, str] = {}
            for segment in segments:
                ids[segment.key] = _define(client, segment, ids)
            profiles = sorted((data_dir / "ingest" / "profiles").glob("*.parquet"))
            _upload(client, "profiles", PROFILE, profiles)
            _upload(client, "events", EVENT, sorted((data_dir / "ingest" / "events").glob("*.parquet")))
            target = _export_dataset(client)
            first = _start_job(client, list(ids.values()))
            _wait(client, f"{JOBS}/{first}", deadline=time.monotonic() + 3600)
            check_batches(client)
            first_export = _start_export(client, target, next(iter(ids.values())))
            _wait(client, f"{EXPORTS}/{first_export}", deadline=time.monotonic() + 3600)
        fill = {"job": first, "export": first_export, "segment": next(iter(ids.values())),
                "entity": _an_entity(profiles[0])}
        result = asyncio.run(_run(base, headers, fill, list(ids.values()), target, clients, seconds))
    finally:
        for process in (server, worker):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
        log.close()
    return result


def _export_dataset(client: httpx.Client) -> str:
    created = client.post("/data/foundation/catalog/dataSets", json={
        "name": "mixed export", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile__union",
                                              "contentType": "application/vnd.adobe.xed+json;version=1"},
        "fileDescription": {"persisted": True, "containerFormat": "parquet", "format": "parquet"}})
    created.raise_for_status()
    return str(created.json()[0].split("/")[-1])


def _start_job(client: httpx.Client, segment_ids: list[str]) -> str:
    created = client.post(JOBS, json=[{"segmentId": s} for s in segment_ids])
    created.raise_for_status()
    return str(created.json()["id"])


def _start_export(client: httpx.Client, dataset_id: str, segment_id: str) -> str:
    created = client.post(EXPORTS, json={"destination": {"datasetId": dataset_id},
                                         "schema": {"name": "_xdm.context.profile"},
                                         "filter": {"segments": [{"segmentId": segment_id}]}})
    created.raise_for_status()
    return str(created.json()["id"])


def _wait(client: httpx.Client, path: str, deadline: float) -> str:
    while True:
        status = str(client.get(path).json()["status"])
        if status in FINAL or time.monotonic() > deadline:
            return status
        time.sleep(0.5)


def _an_entity(profiles: Path) -> str:
    """A CRMID of the data set (every generated profile has one)."""
    first = pq.read_table(profiles, columns=["identityMap"]).slice(0, 1).to_pylist()[0]["identityMap"]
    return str(dict(first)["CRMID"][0]["id"])


async def _run(base: str, headers: dict[str, str], fill: dict[str, str], segment_ids: list[str], target: str,
               clients: int, seconds: float) -> dict[str, Any]:
    latencies: dict[str, list[float]] = {label: [] for label, _, _ in ROUTES}
    errors: dict[str, int] = {label: 0 for label, _, _ in ROUTES}
    first_error: dict[str, str] = {}
    started: dict[str, list[str]] = {"jobs": [], "exports": []}
    closes = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 2, max_keepalive_connections=clients + 2)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120, limits=limits) as client:

        async def driver(kind: str, path: str, body: Any) -> None:
            while time.monotonic() < closes:
                created = await client.post(path, json=body)
                created.raise_for_status()
                started[kind].append(created.json()["id"])
                fill["job" if kind == "jobs" else "export"] = created.json()["id"]
                while time.monotonic() < closes:
                    if (await client.get(f"{path}/{started[kind][-1]}")).json()["status"] in FINAL:
                        break
                    await asyncio.sleep(0.5)

        async def caller(index: int) -> None:
            await asyncio.sleep(index / clients)
            turn = index
            while time.monotonic() < closes:
                label, path, params = ROUTES[turn % len(ROUTES)]
                turn += 1
                began = time.perf_counter()
                try:
                    response = await client.get(path.format(**fill),
                                                params={k: v.format(**fill) for k, v in params.items()})
                except httpx.TransportError as failed:  # a dropped connection is an error the figure counts
                    latencies[label].append(time.perf_counter() - began)
                    errors[label] += 1
                    first_error.setdefault(label, f"{type(failed).__name__}: {failed}")
                    continue
                latencies[label].append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors[label] += 1
                    first_error.setdefault(label, f"{response.status_code} {response.text[:300]}")
                await asyncio.sleep(max(0.0, 1.0 - latencies[label][-1]))

        export_body = {"destination": {"datasetId": target}, "schema": {"name": "_xdm.context.profile"},
                       "filter": {"segments": [{"segmentId": fill["segment"]}]}}
        await asyncio.gather(driver("jobs", JOBS, [{"segmentId": s} for s in segment_ids]),
                             driver("exports", EXPORTS, export_body),
                             *(caller(index) for index in range(clients)))
        outcome = {}
        for kind, path in (("jobs", JOBS), ("exports", EXPORTS)):
            final = []
            for item in started[kind]:
                deadline = time.monotonic() + GRACE
                while True:
                    status = (await client.get(f"{path}/{item}")).json()["status"]
                    if status in FINAL or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.5)
                final.append(status)
            outcome[kind] = {"ran": len(final), "failed": sum(s in ("FAILED", "CANCELLED") for s in final),
                             "stuck": sum(s not in FINAL for s in final)}
    routes = {}
    for label, values in latencies.items():
        ordered = sorted(values) or [0.0]
        routes[label] = {"p50_ms": statistics.median(ordered) * 1000,
                         "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                         "requests": len(values), "errors": errors[label]}
    return {"routes": routes, "requests": sum(len(v) for v in latencies.values()), "errors": sum(errors.values()),
            "seconds": seconds, "first_errors": first_error, **outcome}


def main() -> None:
    from benchmarks.run import DEFAULT_SEED, ensure_data
    from benchmarks.segments import SUITE

    size = os.environ.get("BENCH_SIZE", "100k")
    data_dir, manifest, _ = ensure_data(size, int(os.environ.get("BENCH_SEED", DEFAULT_SEED)))
    result = mixed_under_load(data_dir, manifest, SUITE)
    for label, figures in result.pop("routes").items():
        print(f"{label:32} p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  "
              f"{figures['requests']:6,} calls  {figures['errors']} errors")
    print(result)


if __name__ == "__main__":
    main()
