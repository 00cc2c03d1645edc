"""The worker process of ``openseg serve`` (``worker.process.WorkerProcess``), with small real child processes in
place of ``openseg worker``: it gets the server's settings, a child that keeps dying is restarted at a growing
interval (not in a tight loop), and stopping never waits on a child that will not stop.
``tests/e2e/test_worker_process.py`` runs the real ``openseg serve`` and its ``openseg worker``."""

from __future__ import annotations

import dataclasses
import signal
import sys
import time
from pathlib import Path

import pytest

from openseg.config import Settings
from openseg.worker.process import WorkerProcess, worker_command


def test_the_worker_process_gets_the_servers_settings(tmp_path: Path) -> None:
    """Every setting, flags (``--home``) included, reaches the child as the environment it reads them from."""
    default = Settings.from_env(home=tmp_path / "default", env={})
    changed = Settings(
        home=tmp_path / "home", database_url="postgresql+psycopg://openseg@db/openseg", lake=tmp_path / "lake",
        engine="spark", spark_master="spark://10.0.0.5:7077",
        spark_conf=(("spark.executor.memory", "4g"), ("spark.sql.shuffle.partitions", "200")),
        host="0.0.0.0", port=9090, build_memory_limit="3GB", job_memory_limit="2GB", membership_snapshots=3,
        worker_nice=5, worker_mode="thread", streamer=False, stream_build_seconds=2.5, stream_fsync="commit",
        query_memory_limit="512MB",
        query_threads=2, api_processes=3,
        query_timeout=30.5)
    # An object store lake goes with the DuckDB engine only: a second example changes it.
    on_s3 = dataclasses.replace(changed, engine="duckdb", lake_uri="s3://acme-openseg/lake?region=eu-west-1",
                                lake=changed.home / "lake")
    # The examples change every setting, so a new one must be added to them, and so to ``to_env``.
    assert [f.name for f in dataclasses.fields(Settings)
            if getattr(changed, f.name) == getattr(default, f.name) == getattr(on_s3, f.name)] == []
    for example in (changed, on_s3):
        child = WorkerProcess(example)
        assert Settings.from_env(env=child.env) == example
        assert child.command == [sys.executable, "-m", "openseg", "worker"] == worker_command()


def test_the_worker_mode_is_process_or_thread(tmp_path: Path) -> None:
    assert Settings.from_env(home=tmp_path, env={}).worker_mode == "process"
    assert Settings.from_env(home=tmp_path, env={"OPENSEG_WORKER_MODE": "Thread"}).worker_mode == "thread"
    with pytest.raises(ValueError, match="OPENSEG_WORKER_MODE must be 'process' or 'thread', not 'fiber'"):
        Settings.from_env(home=tmp_path, env={"OPENSEG_WORKER_MODE": "fiber"})


def test_a_child_that_keeps_dying_is_restarted_less_and_less_often(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    dying = [sys.executable, "-c", f"open({str(starts)!r}, 'a').write('start\\n'); raise SystemExit(3)"]
    child = WorkerProcess(Settings.from_env(home=tmp_path, env={}), command=dying, first_backoff=0.2, max_backoff=0.8)
    child.start()
    time.sleep(3)
    child.stop()
    # Started at about 0, 0.2, 0.6, 1.4 and 2.2 s (each start's own time added): a handful, not hundreds.
    assert 3 <= len(starts.read_text().splitlines()) <= 6


def test_stopping_kills_a_child_that_does_not_stop(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    stuck = [sys.executable, "-c", "import pathlib, signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
             f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"]
    child = WorkerProcess(Settings.from_env(home=tmp_path, env={}), command=stuck, stop_seconds=0.5)
    child.start()
    deadline = time.monotonic() + 10
    while not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = child.pid
    assert pid is not None
    began = time.monotonic()
    child.stop()
    assert time.monotonic() - began < 5
    assert child.pid is None and not Path(f"/proc/{pid}").exists()


def test_the_child_hears_the_stop_even_when_the_server_ignores_sigint(tmp_path: Path) -> None:
    """A server started with SIGINT ignored (as a shell without job control starts ``cmd &``) would pass that on
    to its child, and a stop soon after the start, before the child set a handler of its own, went unheard: it
    waited ``stop_seconds`` and killed the child. The child starts with SIGINT at its default."""
    asleep = ["sleep", "60"]  # sets no handler: hears SIGINT only if it starts at its default
    child = WorkerProcess(Settings.from_env(home=tmp_path, env={}), command=asleep, stop_seconds=30)
    ignored = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        child.start()
        deadline = time.monotonic() + 10
        while child.pid is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        signal.signal(signal.SIGINT, ignored)
    began = time.monotonic()
    child.stop()
    assert time.monotonic() - began < 10
    assert child.pid is None
