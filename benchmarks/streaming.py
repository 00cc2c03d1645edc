"""P5, P5a, P5b and the streamer's memory: streaming over the whole data set, as a user deploys it.

``openseg streamer`` runs as its own process (so its memory is its own), beside ``openseg serve`` with
``OPENSEG_STREAMER=off`` (the API and the worker's lanes). The data set is loaded through the batch API under
a merge policy active on edge, three continuous (streaming and edge) segments are defined beside the 10-segment
suite, and a first segment job runs to the end. Then, after ``STREAM_WARMUP`` seconds (default 5) of the same
traffic, not measured (to other profiles), for ``STREAM_SECONDS``:

- **P5a**: single events are sent to ``POST /collection/{inletId}`` **open-loop** at ``STREAM_RATE`` a second,
  each to a profile no other streamed event touches; an acknowledgement's latency runs from its scheduled
  start, so a backlog counts against the server.
- **P5**: every acknowledged event is followed to the moment its profile's membership of the segment it qualifies
  for is written: a watcher in this process lists the membership store's change files every 10 ms and reads each
  new one once (a file the store merges before the watcher sees it is read in the merge: later, never earlier).
  Visible means written, as the design has it (docs/architecture.md, "Segment membership"): a lookup reads the
  change files as they are. Its latency runs from the acknowledgement. Every ``STREAM_PROBE_EVERY``-th event
  (default 1,000th) is also probed through ``GET /access/entities``, which checks that the API shows what the
  store holds: once the watcher has seen its profile's write, the probe asks every 50 ms until the membership
  shows, and its latency too runs from the acknowledgement. A probe asks nothing before the write, which no
  lookup can show earlier: polling is load (probes polling from the acknowledgement took half a core of lookups
  at 1M as soon as visibility took seconds, and the queue fed itself).
- **P5b**: ``POST /ee/v2/interact`` open-loop at ``EDGE_RATE`` a second, one event of a random profile each.
- The streamer flushes the log to the lake (a batch a second) and the worker refreshes the profile store
  incrementally: how many of each fell inside the window is reported, and there must be at least one.

Afterwards every acknowledged event must be in the lake exactly once, and a segment job must find the same
members as streaming did in every continuous segment (its ``openseg:streamingDrift`` all zeros). The
streamer's memory is its peak resident set (``VmHWM``).

Run alone with ``python -m benchmarks.streaming`` (``BENCH_SIZE``, ``BENCH_SEED`` as for ``make bench``).
"""

from __future__ import annotations

import datetime as dt
import http.client
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

from benchmarks.generate import Manifest
from benchmarks.load import EVENT, FINAL, PROFILE, _credentials, _define, _free_port, _upload, _wait_until_up
from benchmarks.segments import Segment
from openseg.heap import freeze_start_up
from openseg.profiles.keys import identity_key
from openseg.profiles.store import IDENTITIES_FILE, resolve_store
from openseg.segmentation.membership import changes as change_files

RATE = 500.0
EDGE_RATE = 100.0
SECONDS = 60.0
#: Seconds of the same traffic before the window, not measured (``STREAM_WARMUP``).
WARMUP = 5.0
PROBE_EVERY = 1000
PROBE_INTERVAL = 0.05
#: How often the watcher lists the membership store's change files.
WATCH_INTERVAL = 0.01
#: How long a probe waits for its membership before counting it as not visible.
PROBE_GIVE_UP = 30.0
PING = "openseg.bench.ping"
#: The continuous segments: the first is the one every streamed event qualifies its profile for.
CONTINUOUS = (
    ("pinged in the last hour", f'xEvent[eventType = "{PING}" and timestamp occurs <= 1 hours before now]'),
    ("US and pinged in the last hour",
     f'homeAddress.country = "US" and xEvent[eventType = "{PING}" and timestamp occurs <= 1 hours before now]'),
    ("gold and pinged in the last day",
     f'loyalty.tier = "gold" and xEvent[eventType = "{PING}" and timestamp occurs <= 24 hours before now]'),
)
POLICIES = "/data/core/ups/config/mergePolicies"
#: What a run's load set up, kept in its home for ``STREAM_HOME``: ids, and the first profile the next window streams to.
SETUP_FILE = "bench-setup.json"
JOBS = "/data/core/ups/segment/jobs"


def streaming_under_load(data_dir: Path, manifest: Manifest, segments: Sequence[Segment],
                         seconds: float | None = None) -> dict[str, Any]:
    """Serve a fresh home, load the data set, and stream while probing (see the module docstring).

    Returns:
        ``ack``, ``visible`` (to the membership's write), ``probes`` (to ``/access/entities`` showing it),
        ``interact``: latency summaries (``p50_ms``, ``p99_ms``, ``max_ms``, ``count``, ``errors``); ``offered``
        and ``acknowledged`` events; ``lake`` (records and distinct ids of the streamed events found in the lake);
        ``flushes`` and ``refreshes`` in the window; ``drift`` (segment id -> the job's drift figures);
        ``streamer_peak_bytes`` and ``serve_peak_bytes``; ``profiles``.
    """
    seconds = seconds if seconds is not None else float(os.environ.get("STREAM_SECONDS", SECONDS))
    rate = float(os.environ.get("STREAM_RATE", RATE))
    edge_rate = float(os.environ.get("EDGE_RATE", EDGE_RATE))
    probe_every = int(os.environ.get("STREAM_PROBE_EVERY", PROBE_EVERY))
    warmup = float(os.environ.get("STREAM_WARMUP", WARMUP))
    # STREAM_HOME: the home of an earlier run, served again without loading (the window's events go to profiles
    # that run's did not touch); for trying a change in minutes, not for the figures reported.
    home = Path(os.environ.get("STREAM_HOME") or tempfile.mkdtemp(prefix="openseg-streaming-"))
    saved = home / SETUP_FILE
    headers = _credentials(home)
    port = _free_port()
    env = {**os.environ, "OPENSEG_HOME": str(home), "OPENSEG_STREAMER": "off"}
    openseg = str(Path(sys.executable).with_name("openseg"))
    log = (home / "processes.log").open("wb")
    streamer = subprocess.Popen([openseg, "streamer", "--home", str(home)], env=env, stdout=log,
                                stderr=subprocess.STDOUT)
    server = subprocess.Popen([openseg, "serve", "--home", str(home), "--port", str(port)], env=env, stdout=log,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            _wait_until_up(client)
            setup = json.loads(saved.read_text()) if saved.is_file() else _load(client, data_dir, manifest, segments)
        crmids = _crmids(data_dir)
        first = setup.get("next", 0)
        # The warm-up's events go to the profiles after the window's (as many as the data set has: a small one
        # warms up for less), one left for its interact calls.
        warm_first = first + int(rate * seconds)
        warmup = max(0.0, min(warmup, (len(crmids) - warm_first - 1) / rate))
        setup["next"] = warm_first + int(rate * warmup)
        saved.write_text(json.dumps(setup))
        # The first job made the policy's membership store: home/membership/<sandbox id>/<policy id>.
        [members] = (home / "membership").glob(f"*/{setup['policy']}")
        watcher = ChangeWatcher(members / "changes", setup["continuous"][0])
        watching = threading.Thread(target=watcher.run, daemon=True)
        watching.start()
        # The profile ids of the probed events' CRMIDs, so that a probe waits for its write before it asks the API.
        store = home / "profiles" / members.parent.name / setup["policy"]
        probed = _profiles_of(store, crmids[first:warm_first][::probe_every])

        def written(crmid: str) -> bool:
            return probed.get(crmid, "") in watcher.first_seen

        roles = {"openseg serve": server.pid, "openseg streamer": streamer.pid, "bench client": os.getpid()}
        # The client's own full collections of what it imported paused its timing of requests by up to 316 ms.
        freeze_start_up()
        if int(rate * warmup) > 0:
            # Not measured: the processes' first second of traffic (connections, caches, the streamer's share of
            # the load's first job) took 100-650 ms an answer, a fifth to a half of a 60-s window's slowest 1 %.
            _window(base, headers, setup, crmids, warm_first, rate, edge_rate, 0, warmup, written)
        cpu_before, began = cpu_seconds(roles), time.monotonic()
        result = _window(base, headers, setup, crmids, first, rate, edge_rate, probe_every, seconds, written)
        cpu_after, took = cpu_seconds(roles), time.monotonic() - began
        result["cpu_cores"] = {role: round((cpu_after.get(role, 0.0) - cpu_before.get(role, 0.0)) / took, 2)
                               for role in cpu_after}
        with httpx.Client(base_url=base, headers=headers, timeout=600) as client:
            sent = result.pop("sent_ids")
            acknowledged = result.pop("acknowledged_at")
            # The interact calls' events too: the job below must read every event streaming has applied (an edge
            # call answered in the window's last second logs its event after the last acknowledged one, and a job
            # that ran before its flush took out of "pinged" the profiles streaming had put in).
            result["lake"] = _in_lake(home / "lake", sent, result.pop("edge_ids"))
            last = max((int(i.removeprefix("p5-")) for i in sent), default=0)
            result["caught_up_s"] = _caught_up(client, setup, crmids[last])
            watcher.stop()
            watching.join()
            profile_of = _profiles_of(store, [crmids[i] for i in acknowledged])
            acked = {profile_of.get(crmids[i], ""): at for i, at in acknowledged.items()}
            result["visible"] = visibility(acked, watcher.first_seen)
            builds = [at / 1000 for at in result.pop("built_at")]  # builtAt: epoch milliseconds
            result["timeline"] = timeline(result.pop("start_wall"), seconds, {
                "ack": result.pop("ack_at"),
                "visible": [(at, max(0.0, watcher.first_seen[p] - at)) for p, at in acked.items()
                            if p in watcher.first_seen],
                "interact": result.pop("interact_at")}, builds)
            result["drift"] = _drift(client, setup)
        result["streamer_peak_bytes"] = _peak_rss(streamer.pid)
        result["serve_peak_bytes"] = _peak_rss(server.pid)
        result["profiles"] = manifest.profiles
        return result
    finally:
        for process in (server, streamer):
            process.terminate()
            process.wait(timeout=60)
        log.close()


def _load(client: httpx.Client, data_dir: Path, manifest: Manifest, segments: Sequence[Segment]) -> dict[str, Any]:
    """The edge policy (the default), the data set, the suite and the continuous segments, a first job, an inlet
    and a datastream on the events dataset."""
    policy = client.post(POLICIES, json={
        "name": "streaming bench", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"},
        "schema": {"name": "_xdm.context.profile"}, "isActiveOnEdge": True, "default": True})
    policy.raise_for_status()
    policy_id = policy.json()["id"]
    ids: dict[str, str] = {}
    for segment in segments:
        ids[segment.key] = _define(client, segment, ids)
    continuous = []
    for name, pql in CONTINUOUS:
        created = client.post("/data/core/ups/segment/definitions", json={
            "name": name, "schema": {"name": "_xdm.context.profile"}, "mergePolicyId": policy_id,
            "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
        created.raise_for_status()
        body = created.json()
        if not (body["evaluationInfo"]["continuous"]["enabled"] and body["evaluationInfo"]["synchronous"]["enabled"]):
            raise RuntimeError(f"{name!r} is not a streaming and edge segment: {body['evaluationInfo']}")
        continuous.append(body["id"])
    _upload(client, "profiles", PROFILE, sorted((data_dir / "ingest" / "profiles").glob("*.parquet")))
    events = _upload(client, "events", EVENT, sorted((data_dir / "ingest" / "events").glob("*.parquet")))
    job = _run_job(client, [*ids.values(), *continuous])
    if job["status"] != "SUCCEEDED":
        raise RuntimeError(f"the first job ended {job['status']}: {job.get('errors')}")
    connection = client.post("/data/foundation/flowservice/connections", json={
        "name": "bench", "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
        "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm", "datasetId": events}}})
    connection.raise_for_status()
    item = client.get(f"/data/foundation/flowservice/connections/{connection.json()['id']}").json()
    datastream = client.post("/data/core/edge/datastreams", json={"name": "bench", "datasetId": events})
    datastream.raise_for_status()
    _wait_for_stores(client, manifest)
    return {"policy": policy_id, "continuous": continuous, "segments": [*ids.values(), *continuous],
            "inlet": item["items"][0]["auth"]["params"]["inletUrl"], "datastream": datastream.json()["id"]}


def _wait_for_stores(client: httpx.Client, manifest: Manifest, wait: float = 1200.0) -> None:
    """Until every merge policy's store holds the whole data set, profiles and events: a build the uploads queued
    must not run inside the window (at 1M, the events' full build took a third of a core there, and kept the
    streamed flushes' incremental refreshes queued behind it until after the window)."""
    deadline = time.monotonic() + wait
    while True:
        listed = client.get(POLICIES, params={"limit": "100"}).json()["children"]
        stores = [client.get(f"{POLICIES}/{policy['id']}").json().get("openseg:profileStore") or {}
                  for policy in listed]
        if all((store.get("profiles"), store.get("events")) == (manifest.profiles, manifest.events) for store in stores):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the stores hold {[(s.get('profiles'), s.get('events')) for s in stores]} profiles "
                               f"and events, not {manifest.profiles} and {manifest.events}")
        time.sleep(0.5)


class ChangeWatcher:
    """The wall time each profile first shows as a member of ``segment`` in the change files of ``folder`` (one
    membership store's ``changes``): every ``interval`` the folder is listed and each file not seen before is read
    once. A file merged away before it was listed is read in the merge, so a time is never earlier than the write.
    """

    def __init__(self, folder: Path, segment: str, interval: float = WATCH_INTERVAL) -> None:
        self.folder, self.segment, self.interval = folder, segment, interval
        self.first_seen: dict[str, float] = {}
        self.files_read = 0
        self._seen: set[str] = set()
        self._stop = threading.Event()

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        while True:
            stopping = self._stop.is_set()  # one last listing after stop(): what was written before it is read
            self.poll()
            if stopping:
                return
            self._stop.wait(self.interval)

    def poll(self) -> None:
        live, superseded = change_files.listing(self.folder)  # the store's own reading of its file names
        listed = time.time()  # after the listing: each file listed was written by then
        for path in sorted(change.path for change in (*live, *superseded)):
            if path.name in self._seen:
                continue
            try:
                table = pq.read_table(path, columns=["_profile_id", "segment_id", "status"])
            except (OSError, ValueError):  # merged away between the listing and the read: read in the merge
                continue
            self._seen.add(path.name)
            self.files_read += 1
            for profile_id, segment_id, status in zip(*(table.column(c).to_pylist() for c in table.column_names),
                                                      strict=True):
                if segment_id == self.segment and status in ("realized", "existing"):
                    self.first_seen.setdefault(profile_id, listed)


def visibility(acknowledged: dict[str, float], first_seen: dict[str, float]) -> dict[str, Any]:
    """Latency from each acknowledgement (profile id -> wall time) to its profile's first showing as a member (0
    when it showed before the client read the acknowledgement); a profile that never showed is an error."""
    latencies = _Latencies()
    for profile_id, at in acknowledged.items():
        if profile_id in first_seen:
            latencies.add(max(0.0, first_seen[profile_id] - at))
        else:
            latencies.fail(f"{profile_id or 'an unknown profile'}: never a member")
    return latencies.summary()


#: The timeline's slices of the window, in seconds.
TIMELINE_SECONDS = 5.0


def timeline(start: float, seconds: float, series: Mapping[str, Sequence[tuple[float, float]]],
             builds: Sequence[float], step: float = TIMELINE_SECONDS) -> list[dict[str, Any]]:
    """Per slice of ``step`` seconds of the window (wall times from ``start``): the p99 and count of each of
    ``series`` (``(wall time, latency in seconds)`` pairs: acknowledgements and interact calls by when they were
    scheduled, membership writes by when their event was acknowledged), and how many profile builds were
    published in it, to see whether the tails fall beside a refresh, a flush or a burst."""
    rows = []
    slices = max(1, int(-(-seconds // step)))
    for index in range(slices):
        low, high = start + index * step, start + (index + 1) * step
        row: dict[str, Any] = {"from_s": round(index * step, 1)}
        for name, pairs in series.items():
            inside = sorted(latency for at, latency in pairs if low <= at < high)
            row[f"{name}_count"] = len(inside)
            row[f"{name}_p99_ms"] = round(inside[min(len(inside) - 1, int(0.99 * len(inside)))] * 1000, 1) \
                if inside else None
        row["builds"] = sum(1 for at in builds if low <= at < high)
        rows.append(row)
    return rows


def _profiles_of(store: Path, crmids: Sequence[str]) -> dict[str, str]:
    """The profile id of each CRMID in the last build of the store at ``store`` (a streamed profile the build
    does not hold yet keys by its smallest identity: for the bench's single-identity events, the CRMID's key)."""
    wanted = set(crmids)
    table = pq.read_table(resolve_store(store) / IDENTITIES_FILE, columns=["namespace", "id", "_profile_id"])
    found = {identity: profile_id for namespace, identity, profile_id in zip(
        *(table.column(c).to_pylist() for c in ("namespace", "id", "_profile_id")), strict=True)
        if identity in wanted and str(namespace).lower() == "crmid"}
    return {crmid: found.get(crmid, identity_key("CRMID", crmid)) for crmid in crmids}


def _run_job(client: httpx.Client, segment_ids: list[str]) -> dict[str, Any]:
    created = client.post(JOBS, json=[{"segmentId": s} for s in segment_ids])
    created.raise_for_status()
    deadline = time.monotonic() + 3600
    while True:
        job: dict[str, Any] = client.get(f"{JOBS}/{created.json()['id']}").json()
        if job["status"] in FINAL or time.monotonic() > deadline:
            return job
        time.sleep(0.5)


def _crmids(data_dir: Path) -> list[str]:
    """Every profile's CRMID (each generated profile has one), in a seeded random order."""
    found = []
    for path in sorted((data_dir / "ingest" / "profiles").glob("*.parquet")):
        for identity_map in pq.read_table(path, columns=["identityMap"]).column("identityMap").to_pylist():
            crm = dict(identity_map).get("CRMID")
            if crm:
                found.append(str(crm[0]["id"]))
    found = sorted(set(found))
    random.Random(5).shuffle(found)
    return found


def _event(i: int, crmid: str, at: str) -> dict[str, Any]:
    schema = {"id": EVENT, "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    return {"header": {"schemaRef": schema}, "body": {"xdmMeta": {"schemaRef": schema}, "xdmEntity": {
        "_id": f"p5-{i}", "timestamp": at, "eventType": PING,
        "identityMap": {"CRMID": [{"id": crmid, "primary": True}]}}}}


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Latencies:
    """Latencies and errors gathered by several threads."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.values.append(seconds)

    def fail(self, what: str) -> None:
        with self._lock:
            self.errors.append(what)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.values) or [float("nan")]
        return {"p50_ms": statistics.median(ordered) * 1000,
                "p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
                "max_ms": ordered[-1] * 1000, "count": len(self.values), "errors": len(self.errors),
                "first_errors": self.errors[:3]}


class _Connection:
    """A keep-alive HTTP/1.1 connection that sends a request and reads its answer with a few calls: the bench's
    client shares the two cores with the server, and ``http.client`` (its response headers parsed by ``email``)
    took 0.15-0.18 of a core for 600 requests a second. Answers must carry ``content-length`` (uvicorn's do)."""

    def __init__(self, base: str) -> None:
        host, port = base.removeprefix("http://").split(":")
        self._socket = socket.create_connection((host, int(port)), timeout=60)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._reader = self._socket.makefile("rb")
        self._host = f"{host}:{port}".encode()

    def request(self, method: str, path: str, body: str | bytes = b"", headers: dict[str, str] | None = None) -> None:
        data = body.encode() if isinstance(body, str) else body
        lines = [f"{method} {path} HTTP/1.1".encode(), b"Host: " + self._host,
                 b"Content-Length: " + str(len(data)).encode()]
        lines += [f"{name}: {value}".encode() for name, value in (headers or {}).items()]
        self._socket.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + data)

    def getresponse(self) -> _Response:
        status_line = self._reader.readline()
        if not status_line:
            raise http.client.RemoteDisconnected("the server closed the connection")
        length = None
        while (line := self._reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise http.client.HTTPException(f"an answer without content-length: {status_line!r}")
        return _Response(int(status_line.split(b" ", 2)[1]), self._reader.read(length))

    def close(self) -> None:
        self._reader.close()
        self._socket.close()


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self._body = body

    def read(self) -> bytes:
        return self._body


def _connection(base: str) -> _Connection:
    return _Connection(base)


def _open_loop(count: int, rate: float, start: float, threads: int,
               send: Callable[[_Connection, int, float], None], base: str,
               stop_at: float) -> list[threading.Thread]:
    """``threads`` threads sending ``count`` requests, the i-th scheduled at ``start + i / rate``; none is sent
    after ``stop_at`` (a server that cannot keep up leaves the rest unsent, which the figures report)."""
    counter = itertools.count()
    lock = threading.Lock()

    def run() -> None:
        connection = _connection(base)
        while True:
            with lock:
                i = next(counter)
            if i >= count or time.monotonic() > stop_at:
                break
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            try:
                send(connection, i, scheduled)
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = _connection(base)
        connection.close()

    started = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for thread in started:
        thread.start()
    return started


def _window(base: str, headers: dict[str, str], setup: dict[str, Any], crmids: list[str], first: int, rate: float,
            edge_rate: float, probe_every: int, seconds: float, written: Callable[[str], bool]) -> dict[str, Any]:
    """The window: events, interact calls and probes open-loop, the events to ``crmids[first:]``; ``written(crmid)``
    tells whether the watcher saw that profile's membership written (``probe_every`` 0: no probes)."""
    total = int(rate * seconds)
    if first + total > len(crmids):
        raise RuntimeError(f"{total} events need as many profiles; the data set has {len(crmids)}")
    inlet_path = setup["inlet"].split("//", 1)[1].split("/", 1)[1]
    ack, probed, interact = _Latencies(), _Latencies(), _Latencies()
    interact_at: list[tuple[float, float]] = []
    ack_at: list[tuple[float, float]] = []
    sent_ids: list[str] = []
    edge_ids: list[str] = []
    acknowledged_at: dict[int, float] = {}
    sent_lock = threading.Lock()
    probes: list[threading.Thread] = []
    target = setup["continuous"][0]
    plain = {"Content-Type": "application/json"}
    authorized = {**headers, "Content-Type": "application/json"}

    def probe(crmid: str, acknowledged: float) -> None:
        connection = _connection(base)
        path = ("/data/core/ups/access/entities?schema.name=_xdm.context.profile&entityIdNS=CRMID&entityId="
                + crmid)
        try:
            while not written(crmid) and time.monotonic() - acknowledged < PROBE_GIVE_UP:
                time.sleep(WATCH_INTERVAL)
            while time.monotonic() - acknowledged < PROBE_GIVE_UP:
                connection.request("GET", path, headers=headers)
                response = connection.getresponse()
                body = response.read()
                if response.status == 200:
                    entity = next(iter(json.loads(body).values()))["entity"]
                    membership = (entity.get("segmentMembership") or {}).get("ups") or {}
                    if (membership.get(target) or {}).get("status") in ("realized", "existing"):
                        probed.add(time.monotonic() - acknowledged)
                        return
                time.sleep(PROBE_INTERVAL)
            probed.fail(f"{crmid}: not in the segment {PROBE_GIVE_UP:.0f} s after its acknowledgement")
        finally:
            connection.close()

    def send_event(connection: _Connection, i: int, scheduled: float) -> None:
        i += first
        connection.request("POST", "/" + inlet_path, body=json.dumps(_event(i, crmids[i], _now())), headers=plain)
        response = connection.getresponse()
        body = response.read()
        done = time.monotonic()
        if response.status != 200:
            ack.fail(f"{response.status} {body[:200]!r}")
            return
        ack.add(done - scheduled)
        with sent_lock:
            ack_at.append((time.time() - (time.monotonic() - scheduled), done - scheduled))  # sent at that wall time
            sent_ids.append(f"p5-{i}")
            acknowledged_at[i] = time.time()
        if probe_every and (i - first) % probe_every == 0:
            thread = threading.Thread(target=probe, args=(crmids[i], done), daemon=True)
            thread.start()
            with sent_lock:
                probes.append(thread)

    edge_path = f"/ee/v2/interact?dataStreamId={setup['datastream']}"
    rng = random.Random(16)
    edge_profiles = [crmids[-1 - rng.randrange(len(crmids) - first - total)] for _ in range(int(edge_rate * seconds))]

    def send_interact(connection: _Connection, i: int, scheduled: float) -> None:
        event = {"event": {"xdm": {"identityMap": {"CRMID": [{"id": edge_profiles[i], "primary": True}]},
                                   "_id": f"edge-{i}", "eventType": PING, "timestamp": _now()}}}
        connection.request("POST", edge_path, body=json.dumps(event), headers=authorized)
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            interact.fail(f"{response.status} {body[:200]!r}")
            return
        took = time.monotonic() - scheduled
        interact.add(took)
        with sent_lock:
            interact_at.append((time.time() - took, took))
            edge_ids.append(f"edge-{i}")

    stores: list[dict[str, Any]] = []
    watching = threading.Event()

    def watch_store() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            while not watching.is_set():
                stores.append(client.get(f"{POLICIES}/{setup['policy']}").json().get("openseg:profileStore") or {})
                watching.wait(1.0)

    batches_before = _streamed_batches(base, headers)
    watcher = threading.Thread(target=watch_store, daemon=True)
    watcher.start()
    start = time.monotonic() + 0.5
    start_wall = time.time() + 0.5
    stop_at = start + 2 * seconds + 30
    senders = _open_loop(total, rate, start, 48, send_event, base, stop_at)
    senders += _open_loop(len(edge_profiles), edge_rate, start, 12, send_interact, base, stop_at)
    for thread in senders:
        thread.join()
    elapsed = time.monotonic() - start
    for thread in list(probes):
        thread.join()
    watching.set()
    watcher.join()
    built = {store.get("builtAt") for store in stores if store.get("builtAt")}
    return {"ack": ack.summary(), "probes": probed.summary(), "interact": interact.summary(),
            "offered": total, "acknowledged": len(sent_ids), "seconds": elapsed, "rate": rate, "edge_rate": edge_rate,
            "flushes": len(_streamed_batches(base, headers) - batches_before), "refreshes": max(0, len(built) - 1),
            "sent_ids": sent_ids, "edge_ids": edge_ids, "acknowledged_at": acknowledged_at, "interact_at": interact_at, "ack_at": ack_at,
            "start_wall": start_wall, "built_at": sorted(built)}


def _streamed_batches(base: str, headers: dict[str, str]) -> set[str]:
    """The ids of the batches the streamer wrote."""
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        found: set[str] = set()
        start = 0
        while True:
            page = client.get("/data/foundation/catalog/batches", params={"limit": "100", "start": str(start)}).json()
            found |= {batch_id for batch_id, body in page.items()
                      if "openseg:streamSeq" in json.dumps(body.get("inputFormat") or {})}
            if len(page) < 100:
                return found
            start += 100


def _in_lake(lake: Path, sent: list[str], also: Collection[str] = (), wait: float = 120.0) -> dict[str, int]:
    """How many of the acknowledged events the lake holds, and how many times, waiting for the last flush of them
    and of the events ``also`` names (the interact calls')."""
    wanted, others = set(sent), set(also)
    deadline = time.monotonic() + wait
    while True:
        ids = []
        try:
            paths = list(lake.rglob("*.parquet"))
        except FileNotFoundError:  # a batch's staging folder renamed while it was listed: list again
            continue
        for path in paths:
            try:
                schema = pq.read_schema(path)
                if "_id" not in schema.names or "eventType" not in schema.names:
                    continue
                table = pq.read_table(path, columns=["_id"])
            except OSError:  # a file being written, or moved since the listing
                continue
            ids += [i for i in table.column("_id").to_pylist() if isinstance(i, str) and i.startswith(("p5-", "edge-"))]
        found = [i for i in ids if i in wanted]
        if (len(set(found)) >= len(wanted) and others <= set(ids)) or time.monotonic() > deadline:
            return {"records": len(found), "distinct": len(set(found)), "expected": len(wanted)}
        time.sleep(1.0)


def _caught_up(client: httpx.Client, setup: dict[str, Any], crmid: str, wait: float = 300.0) -> float:
    """Seconds after the window until streaming segmentation has the last streamed profile in its segment (the
    drift a job reports compares the two only once streaming has caught up)."""
    started = time.monotonic()
    while time.monotonic() - started < wait:
        found = client.get("/data/core/ups/access/entities", params={
            "schema.name": "_xdm.context.profile", "entityIdNS": "CRMID", "entityId": crmid})
        if found.status_code == 200:
            entity = next(iter(found.json().values()))["entity"]
            membership = ((entity.get("segmentMembership") or {}).get("ups") or {}).get(setup["continuous"][0]) or {}
            if membership.get("status") in ("realized", "existing"):
                break
        time.sleep(0.2)
    return time.monotonic() - started


def _drift(client: httpx.Client, setup: dict[str, Any]) -> dict[str, Any]:
    """A job of every segment after the window: its streaming drift per continuous segment."""
    job = _run_job(client, setup["segments"])
    if job["status"] != "SUCCEEDED":
        raise RuntimeError(f"the job after the window ended {job['status']}: {job.get('errors')}")
    drift = (job.get("metrics") or {}).get("openseg:streamingDrift") or {}
    return {segment: drift.get(segment) for segment in setup["continuous"]}


def cpu_seconds(roles: dict[str, int]) -> dict[str, float]:
    """The CPU seconds (user and system) each process of ``roles`` has used so far, by role, and those of the
    children of each but this process (a server's edge processes and its worker, by their command lines: "edge
    processes" for its lanes, "worker"). A process that ended is left out.

    The window's latencies swing tenfold from run to run of the same code (the two cores are oversubscribed and
    the scheduler decides who falls behind); the CPU each part takes for the same load does not, so the run
    reports it beside them."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, str]] = {}  # pid -> (parent, CPU seconds, command line)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks, command)
    used: dict[str, float] = {}
    for role, pid in roles.items():
        if pid in stats:
            used[role] = stats[pid][1]
        if pid == os.getpid():
            continue
        for child, (parent, seconds, command) in stats.items():
            if parent == pid and child != pid:
                name = "worker" if " worker" in command else "edge processes"
                used[name] = used.get(name, 0.0) + seconds
    return used


def _peak_rss(pid: int) -> int | None:
    """A live process's peak resident set in bytes (Linux), or None."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def main() -> None:
    from benchmarks.run import DEFAULT_SEED, ensure_data
    from benchmarks.segments import SUITE

    size = os.environ.get("BENCH_SIZE", "100k")
    data_dir, manifest, _ = ensure_data(size, int(os.environ.get("BENCH_SEED", DEFAULT_SEED)))
    result = streaming_under_load(data_dir, manifest, SUITE)
    for name in ("ack", "visible", "probes", "interact"):
        figures = result.pop(name)
        print(f"{name:9} p50 {figures['p50_ms']:7.1f} ms  p99 {figures['p99_ms']:7.1f} ms  max {figures['max_ms']:7.1f} ms"
              f"  {figures['count']:6,} answers  {figures['errors']} errors {figures['first_errors']}")
    print("cores in the window: " + ", ".join(f"{role} {cores:.2f}" for role, cores in result["cpu_cores"].items()))
    print("window s   ack p99 (n)         written p99 (n)     interact p99 (n)   builds")
    for row in result.pop("timeline"):
        print(f"{row['from_s']:6.0f}   {row['ack_p99_ms'] or 0:8.0f} ms ({row['ack_count']:5})"
              f"  {row['visible_p99_ms'] or 0:8.0f} ms ({row['visible_count']:5})"
              f"  {row['interact_p99_ms'] or 0:8.0f} ms ({row['interact_count']:4})   {row['builds']}")
    print(result)


if __name__ == "__main__":
    main()
