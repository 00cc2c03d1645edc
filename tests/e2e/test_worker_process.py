"""``openseg serve`` runs its worker as a child ``openseg worker`` process (``OPENSEG_WORKER_MODE=process``, the
default): jobs run there, not in the API's process; a killed child is started again and the next job runs; and
however the server ends (SIGTERM, or SIGKILL, which runs no clean-up) no worker outlives it.

Real processes throughout: the server is ``python -m openseg serve`` on a free port, read through HTTP and
``/proc`` (what ``ps`` shows)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from openseg.container import Services
from openseg.store.models import WorkItem
from openseg.worker.queue import Queue
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import JOBS
from tests.conftest import Org, own_home
from tests.e2e.server import free_port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    http: httpx.Client
    log: Path

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")


def _wait(check: Callable[[], object], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := check()):
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.1)
    return found


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Services, Org]]:
    with own_home(tmp_path / "home") as (services, org, _):
        yield services, org


def _env(**settings: str) -> dict[str, str]:
    """This process's environment without openseg's settings (the server gets its home by ``--home``, and the
    worker must get it from the server), plus ``settings``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("OPENSEG_")}, **settings}


@pytest.fixture
def start_server(served: tuple[Services, Org], tmp_path: Path) -> Iterator[Callable[..., Server]]:
    services, _ = served
    started: list[Server] = []

    def start(**settings: str) -> Server:
        port = free_port()
        log = tmp_path / f"serve-{len(started)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "openseg", "serve", "--home", str(services.settings.home), "--port", str(port)],
                env=_env(**settings), stdout=out, stderr=subprocess.STDOUT)
        server = Server(process, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30), log)
        started.append(server)

        def up() -> bool:
            assert process.poll() is None, server.output
            try:
                return server.http.get("/health").status_code == 200
            except httpx.HTTPError:
                return False

        _wait(up, 30, "the server answers")
        return server

    yield start
    for server in started:
        server.http.close()
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(30)


def children(pid: int) -> list[int]:
    """The processes ``pid`` started that still run (``/proc/PID/task/*/children``)."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:  # the thread ended meanwhile
            continue
    return sorted(child for child in found if running(child))


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, ended but not yet reaped by its new parent, is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_text().rstrip("\0").split("\0")


def nice_values(pid: int) -> list[int]:
    """The nice value of each thread of ``pid`` (``ps -L -o nice``)."""
    values = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            values.append(int((task / "stat").read_text().rsplit(")", 1)[1].split()[16]))
        except OSError:
            continue
    return values


def the_worker(server: Server) -> int:
    """The server's one worker child, once it runs: its ``openseg worker`` (its other children are the processes
    of its edge and lookups lanes)."""
    # A child runs the server's command line until it has exec'd the worker's (preexec_fn runs in between).
    pid: int = _wait(lambda: [child for child in children(server.process.pid) if _is_worker(child)], 30,
                     "the server starts its worker process")[0]
    assert [child for child in children(server.process.pid) if not _is_multiprocessing(child)] == [pid]
    return pid


def lane_processes(server: Server) -> list[int]:
    """The processes of the server's edge and lookups lanes: ``OPENSEG_API_PROCESSES`` (2) each."""
    found: list[int] = _wait(lambda: len(pids := [c for c in children(server.process.pid) if _is_lane(c)]) == 4
                             and pids, 30, "the server starts its lanes' processes")
    return found


def _is_lane(pid: int) -> bool:
    return _is_multiprocessing(pid, "multiprocessing.spawn")


def _is_multiprocessing(pid: int, module: str = "multiprocessing.") -> bool:
    """Whether ``pid`` runs ``module`` of multiprocessing: a lane's process, or the resource tracker the first
    lane's start starts beside them."""
    try:
        return any(module in part for part in command_line(pid))
    except OSError:
        return False


def _is_worker(pid: int) -> bool:
    try:
        return command_line(pid)[1:] == ["-m", "openseg", "worker"]
    except OSError:  # it ended meanwhile
        return False


def load_people(server: Server, org: Org) -> str:
    """Ten people (the odd ones in the US) ingested by the server's worker; the US segment's id."""
    headers = org.headers()
    # The API's helpers take TestClient, an httpx client: the server's real one does as well.
    dataset = create_dataset(server.http, headers)
    batch = upload_batch(server.http, headers, dataset, {"people.json": json_lines([person(i) for i in range(10)])})

    def ingested() -> bool:
        status = server.http.get(f"/data/foundation/catalog/batches/{batch}", headers=headers).json()[batch]["status"]
        assert status != "failed", status
        return bool(status == "success")

    _wait(ingested, 30, "the batch is ingested")
    return str(define(server.http, org, "US", 'homeAddress.country = "US"')["id"])


def run_job(server: Server, org: Org, segment_id: str) -> dict[str, Any]:
    created = server.http.post(JOBS, headers=org.headers(), json=[{"segmentId": segment_id}])
    assert created.status_code == 200, created.text

    def done() -> dict[str, Any] | None:
        job = server.http.get(f"{JOBS}/{created.json()['id']}", headers=org.headers()).json()
        return job if job["status"] in ("SUCCEEDED", "FAILED") else None

    job: dict[str, Any] = _wait(done, 30, "the job ends")
    assert job["status"] == "SUCCEEDED", job
    assert job["metrics"]["segmentedProfileByStatusCounter"][segment_id]["realized"] + \
        job["metrics"]["segmentedProfileByStatusCounter"][segment_id]["existing"] == 5, job
    return job


def claimers(services: Services) -> set[int]:
    """The process ids that claimed the queue's work items (``host:pid:worker``)."""
    with services.db.session() as session:
        return {int(item.claimed_by.split(":")[1]) for item in session.query(WorkItem).all() if item.claimed_by}


def test_serve_runs_jobs_in_a_worker_process_of_its_own(
        served: tuple[Services, Org], start_server: Callable[..., Server]) -> None:
    services, org = served
    server = start_server()
    worker = the_worker(server)
    run_job(server, org, load_people(server, org))
    # The ingestion, the build and the job ran in the child, none in the API's process.
    assert claimers(services) == {worker}
    # The child's lanes run at the lower CPU priority (OPENSEG_WORKER_NICE, 10), and no thread of the API's
    # process does: there is no worker thread left in it.
    base = os.getpriority(os.PRIO_PROCESS, 0)
    assert min(19, base + 10) in nice_values(worker), nice_values(worker)
    assert set(nice_values(server.process.pid)) == {base}, nice_values(server.process.pid)


def test_a_killed_worker_process_is_started_again_and_runs_the_next_job(
        served: tuple[Services, Org], start_server: Callable[..., Server]) -> None:
    services, org = served
    server = start_server()
    first = the_worker(server)
    segment_id = load_people(server, org)
    # The batch shows success once its ingestion commits; the work item is marked done just after. Killed in
    # between, the item is (rightly) run again by the next worker: kill only once the first has finished it.
    _wait(lambda: Queue(services.db).pending() == 0, 30, "the first worker finishes its work items")
    os.kill(first, signal.SIGKILL)
    # Its lanes' processes are children too: wait for a worker child that is not the one killed.
    _wait(lambda: [pid for pid in children(server.process.pid) if _is_worker(pid) and pid != first], 30,
          "another worker process starts")
    second = the_worker(server)
    assert second != first
    assert f"the worker process {first} ended (killed by SIGKILL)" in server.output, server.output
    job = run_job(server, org, segment_id)
    assert job["metrics"]["segmentedProfileByStatusCounter"][segment_id]["realized"] == 5
    assert claimers(services) == {first, second}  # the batch by the first, the job by the second
    assert server.process.poll() is None and running(second)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_no_child_process_outlives_its_server(start_server: Callable[..., Server], how: signal.Signals) -> None:
    server = start_server()
    worker = the_worker(server)
    lanes = [child for child in children(server.process.pid) if _is_multiprocessing(child)]
    assert set(lane_processes(server)) < set(lanes)  # and the resource tracker
    _wait(lambda: "openseg worker" in server.output, 30, "the worker is up")
    server.process.send_signal(how)
    server.process.wait(40)
    assert server.process.returncode == -how, server.output
    if how == signal.SIGTERM:  # the server shut down, and stopped its worker doing so
        assert "Application shutdown complete" in server.output, server.output
    # After SIGKILL, which runs no clean-up, the kernel killed the worker as its parent died (PR_SET_PDEATHSIG).
    _wait(lambda: not running(worker), 5, f"the worker process {worker} ends with the server")
    # The lanes' processes see that their server is gone (they were adopted) and end too, as does the tracker.
    _wait(lambda: not any(running(pid) for pid in lanes), 5, f"the lane processes {lanes} end with the server")


def test_in_thread_mode_serve_runs_jobs_in_its_own_process(
        served: tuple[Services, Org], start_server: Callable[..., Server]) -> None:
    services, org = served
    server = start_server(OPENSEG_WORKER_MODE="thread")
    run_job(server, org, load_people(server, org))
    assert claimers(services) == {server.process.pid}
    lanes = lane_processes(server)
    assert [child for child in children(server.process.pid) if child not in lanes and not _is_multiprocessing(
        child, "multiprocessing.resource_tracker")] == []  # its lanes' processes (and their tracker) alone
