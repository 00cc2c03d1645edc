"""P6: a job's status stays quick to read while the service is busy.

A real ``openseg serve`` process (the API, and the worker with the scheduler in its child ``openseg worker``
process, as ``make run`` starts it; ``OPENSEG_WORKER_MODE=thread`` puts them in one) over a fresh home: the
data set's ingest files are uploaded through the batch API, the 10-segment suite is defined, and a segment
job is created; the worker then ingests, builds the merged profile store and runs the job. From the
job's creation until it finishes, ``CLIENTS`` concurrent clients poll ``GET /segment/jobs/{id}``, each once
every ``INTERVAL`` seconds (as a client waiting for its job does; the start of each is spread over the first
interval), and every response's latency is kept. The figure is their p99 (goal ≤ 50 ms), with the window's
length and what ran in it. (Clients polling back to back measure the server's throughput instead: one
request costs a few milliseconds of Python, so 50 such clients queue behind one another whatever the job
does.)

Run alone with ``python -m benchmarks.load`` (``BENCH_SIZE``, ``BENCH_SEED`` as for ``make bench``).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.generate import Manifest
from benchmarks.segments import Segment

#: Concurrent clients polling the job.
CLIENTS = 50
#: Seconds between one client's polls.
INTERVAL = 1.0
#: The job is done when it reaches one of these.
FINAL = ("SUCCEEDED", "FAILED", "CANCELLED")
PROFILE = "https://ns.adobe.com/xdm/context/profile"
EVENT = "https://ns.adobe.com/xdm/context/experienceevent"


def status_under_load(data_dir: Path, manifest: Manifest, segments: Sequence[Segment],
                      clients: int = CLIENTS, interval: float = INTERVAL, separate_worker: bool = False) -> dict[str, Any]:
    """Serve a fresh home, load the data set, run a job over ``segments`` and poll its status with
    ``clients`` concurrent clients, each every ``interval`` seconds (0: back to back), until it finishes
    (see the module docstring).

    Returns:
        ``p50_ms``, ``p99_ms``, ``max_ms`` of the status reads, ``requests``, ``errors`` (non-200
        answers), ``window_s`` (job created → finished), ``build_s`` and ``job_s`` (the worker's build and
        the job's evaluation inside the window), ``status`` (the job's final status) and ``profiles``.
    """
    home = Path(tempfile.mkdtemp(prefix="openseg-load-"))
    headers = _credentials(home)
    port = _free_port()
    env = {**os.environ, "OPENSEG_HOME": str(home)}
    openseg = str(Path(sys.executable).with_name("openseg"))
    command = [openseg, "serve", "--home", str(home), "--port", str(port)]
    if separate_worker:
        command.append("--no-worker")
    # The processes' output stays in the home: a run that fails says why there.
    log = (home / "processes.log").open("wb")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    worker = subprocess.Popen([openseg, "worker", "--home", str(home)], env=env, stdout=log,
                              stderr=subprocess.STDOUT) if separate_worker else None
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            _wait_until_up(client)
            ids: dict[str, str] = {}
            for segment in segments:  # in order: an inSegment names a segment defined before it
                ids[segment.key] = _define(client, segment, ids)
            segment_ids = list(ids.values())
            _upload(client, "profiles", PROFILE, sorted((data_dir / "ingest" / "profiles").glob("*.parquet")))
            _upload(client, "events", EVENT, sorted((data_dir / "ingest" / "events").glob("*.parquet")))
            created = client.post("/data/core/ups/segment/jobs", json=[{"segmentId": s} for s in segment_ids])
            created.raise_for_status()
            job_id = created.json()["id"]
        started = time.perf_counter()
        latencies, errors, final = asyncio.run(_poll(base, headers, job_id, clients, interval))
        window = time.perf_counter() - started
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            job = client.get(f"/data/core/ups/segment/jobs/{job_id}").json()
            check_batches(client)
    finally:
        for process in (server, worker):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
        log.close()
    ordered = sorted(latencies)
    segmentation = job.get("metrics", {}).get("profileSegmentationTime", {}).get("totalTimeInMs", 0) / 1000
    return {
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        "max_ms": ordered[-1] * 1000,
        "requests": len(ordered),
        "errors": errors,
        "window_s": window,
        "job_s": segmentation,
        "status": final,
        "profiles": job.get("metrics", {}).get("totalProfiles"),
    }


def check_batches(client: httpx.Client) -> None:
    """Raise unless every batch of the data set was ingested (a refused batch would leave the figures measured
    over a part of the data)."""
    batches = client.get("/data/foundation/catalog/batches", params={"limit": "100"}).json()
    failed = {batch_id: body.get("errors") for batch_id, body in batches.items()
              if body.get("status") not in ("success", "replaced")}
    if failed:
        raise RuntimeError(f"batches not ingested: {failed}")


def _credentials(home: Path) -> dict[str, str]:
    """An org with credentials in the new home's metadata store, as ``openseg credentials create`` makes."""
    from openseg.bootstrap import build_services
    from openseg.config import Settings
    from openseg.store.tenancy import issue_credentials

    services = build_services(Settings.from_env(home=home, env={}))
    try:
        org = "LOADBENCH00000@AdobeOrg"
        with services.db.session() as session:
            issued = issue_credentials(session, org, "prod")
        return {"Authorization": f"Bearer {issued.access_token}", "x-api-key": issued.api_key,
                "x-gw-ims-org-id": org, "x-sandbox-name": "prod"}
    finally:
        services.db.dispose()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_up(client: httpx.Client, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if client.get("/data/core/ups/segment/jobs").status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("openseg serve did not answer within a minute")
        time.sleep(0.2)


def _define(client: httpx.Client, segment: Segment, ids: dict[str, str]) -> str:
    response = client.post("/data/core/ups/segment/definitions", json={
        "name": segment.key, "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": segment.pql(ids)}})
    if response.status_code != 200:
        raise RuntimeError(f"defining {segment.key}: {response.status_code} {response.text}")
    return str(response.json()["id"])


def _upload(client: httpx.Client, name: str, schema: str, files: Sequence[Path]) -> str:
    """A profile-enabled dataset with one batch of ``files`` (Parquet), completed (the worker ingests it); returns
    the dataset's id."""
    created = client.post("/data/foundation/catalog/dataSets", json={
        "name": name, "schemaRef": {"id": schema, "contentType": "application/vnd.adobe.xed+json;version=1"},
        "tags": {"unifiedProfile": ["enabled:true"]}})
    created.raise_for_status()
    dataset_id = created.json()[0].split("/")[-1]
    batch = client.post("/data/foundation/import/batches",
                        json={"datasetId": dataset_id, "inputFormat": {"format": "parquet"}})
    batch.raise_for_status()
    batch_id = batch.json()["id"]
    for path in files:
        put = client.put(f"/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{path.name}",
                         headers={"Content-Type": "application/octet-stream"}, content=path.read_bytes())
        put.raise_for_status()
    client.post(f"/data/foundation/import/batches/{batch_id}?action=COMPLETE").raise_for_status()
    return str(dataset_id)


async def _poll(base: str, headers: dict[str, str], job_id: str, clients: int,
                interval: float) -> tuple[list[float], int, str]:
    """``clients`` loops reading the job every ``interval`` seconds until it is final: every latency, the
    non-200 answers, and the final status."""
    latencies: list[float] = []
    errors = 0
    final = ""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60, limits=limits) as client:

        async def reader(index: int) -> None:
            nonlocal errors, final
            await asyncio.sleep(interval * index / clients)
            while not final:
                started = time.perf_counter()
                response = await client.get(f"/data/core/ups/segment/jobs/{job_id}")
                latencies.append(time.perf_counter() - started)
                await asyncio.sleep(max(0.0, interval - latencies[-1]))
                if response.status_code != 200:
                    errors += 1
                    continue
                status = response.json()["status"]
                if status in FINAL:
                    final = status

        await asyncio.gather(*(reader(index) for index in range(clients)))
    return latencies, errors, final


def main() -> None:
    from benchmarks.run import DEFAULT_SEED, ensure_data
    from benchmarks.segments import SUITE

    size = os.environ.get("BENCH_SIZE", "100k")
    data_dir, manifest, _ = ensure_data(size, int(os.environ.get("BENCH_SEED", DEFAULT_SEED)))
    result = status_under_load(data_dir, manifest, SUITE, interval=float(os.environ.get("LOAD_INTERVAL", INTERVAL)),
                               separate_worker=os.environ.get("LOAD_SEPARATE_WORKER") == "1")
    print({key: round(value, 2) if isinstance(value, float) else value for key, value in result.items()})


if __name__ == "__main__":
    main()
