"""Durability with real processes: ``openseg serve`` acknowledges streamed messages and is killed with
SIGKILL (no clean-up runs), then ``openseg streamer`` is started: every acknowledged message is in the
lake exactly once.

Two kill points: ``after-acks`` (the test kills the server once its messages are acknowledged, whatever
its worker process's flusher was doing: the kernel kills that child with it) and ``mid-flush`` (the server
kills itself inside its first flush, after the batch files are in the lake and before the transaction that
records them and moves the offset; its streamer runs in its own threads there, ``OPENSEG_WORKER_MODE=thread``,
since the kill point is set in the server's process).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import create_dataset
from tests.conftest import Org, own_home
from tests.e2e.server import free_port
from tests.streaming.inlets import EVENT_SCHEMA, click, create_inlet, envelope, lake_records

#: ``openseg serve`` on the port in argv[2], killing itself (SIGKILL) at the point named by argv[1].
SERVER_THAT_DIES = """
import os, signal, sys

if sys.argv[1] == "mid-flush":
    from openseg.catalog import streaming

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    streaming.record_batch_success = die

from openseg.cli import app

sys.argv = ["openseg", "serve", "--port", sys.argv[2]]
app()
"""

MESSAGES = 300

#: How long a restarted process may take to stop gracefully.
STOP_SECONDS = 120


@pytest.fixture
def home(tmp_path: Path) -> Iterator[tuple[Services, Org, TestClient]]:
    with own_home(tmp_path) as served:
        yield served


def _env(services: Services) -> dict[str, str]:
    return {**os.environ, "OPENSEG_HOME": str(services.settings.home),
            "OPENSEG_DATABASE_URL": services.settings.database_url, "OPENSEG_LAKE": str(services.settings.lake)}


def _wait_for(base: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not start: {process.communicate()[0] if process.poll() is not None else ''}")


def _send(url: str, ids: list[int]) -> list[str]:
    """Post ``click(i)`` for each id; the ``_id`` of those acknowledged (200) before the server died."""
    acknowledged = []
    with httpx.Client(timeout=10) as http:
        for i in ids:
            try:
                response = http.post(url, json=envelope(click(i)))
            except httpx.HTTPError:
                break  # the server is gone
            if response.status_code != 200:
                break
            acknowledged.append(f"click-{i}")
    return acknowledged


@pytest.mark.parametrize("point", ["after-acks", "mid-flush"])
def test_every_acknowledged_message_reaches_the_lake_once_after_a_kill(
        home: tuple[Services, Org, TestClient], point: str) -> None:
    services, org, client = home
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA, profile_enabled=False)
    inlet = create_inlet(client, org, dataset_id)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(services) | ({"OPENSEG_WORKER_MODE": "thread"} if point == "mid-flush" else {})
    server = subprocess.Popen([sys.executable, "-c", SERVER_THAT_DIES, point, str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        _wait_for(base, server)
        url = f"{base}/collection/{inlet['auth']['params']['inletId']}"
        shares = [list(range(k, MESSAGES, 4)) for k in range(4)]  # four concurrent clients: group commits
        with ThreadPoolExecutor(4) as pool:
            acknowledged = [i for share in pool.map(lambda ids: _send(url, ids), shares) for i in share]
        if point == "after-acks":
            assert len(acknowledged) == MESSAGES
            server.send_signal(signal.SIGKILL)
        server.wait(60)
    finally:
        if server.poll() is None:
            server.kill()
        output = server.communicate()[0]
    assert server.returncode == -signal.SIGKILL, output
    assert acknowledged, output
    if point == "mid-flush":
        # Killed between publishing the batch's files and recording them: the catalog shows no batch.
        assert lake_records(client, org, services.settings.lake, dataset_id) == []

    restarted = subprocess.Popen([str(Path(sys.executable).parent / "openseg"), "streamer"], env=_env(services),
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            records = lake_records(client, org, services.settings.lake, dataset_id)
            if len(records) >= len(acknowledged):
                break
            time.sleep(0.2)
        time.sleep(1.5)  # one more flush interval: nothing else may arrive
    finally:
        restarted.send_signal(signal.SIGINT)
        # A graceful stop first finishes the item in hand, which may be work queued after the one awaited (a
        # profile build): on a loaded 2-core machine, over 30 s.
        restarted_output = restarted.communicate(timeout=STOP_SECONDS)[0]
    ids = [r["_id"] for r in lake_records(client, org, services.settings.lake, dataset_id)]
    assert len(ids) == len(set(ids)), "a message reached the lake twice"
    assert set(acknowledged) <= set(ids), (len(acknowledged), len(ids), restarted_output)
    # Only messages that were sent (a message logged just before the kill may have lost its answer).
    assert set(ids) <= {f"click-{i}" for i in range(MESSAGES)}
    assert not list(services.settings.home.rglob("*.partial"))
