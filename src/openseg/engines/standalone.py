"""A Spark standalone cluster on this machine, started from the installed pyspark: a master and workers on loopback.

The cluster tests (tests/e2e/test_spark_cluster.py) and the scale benchmark (``BENCH_SPARK_MASTER=cluster``) run
openseg against it, so the executors are other processes than the driver, as on a real cluster. Each master and
worker is a JVM in a process group of its own (the executors a worker starts join its group), so stopping the
cluster stops every process it started.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: How long the master and workers may take to come up (JVM start on a busy two-core machine).
START_TIMEOUT = 180.0


@dataclass(frozen=True)
class Cluster:
    """A running standalone cluster: its master URL, the master's JSON status page and the session settings
    (``OPENSEG_SPARK_CONF``) that fit it."""

    master: str
    status_url: str
    workers: int
    conf: tuple[tuple[str, str], ...]

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.status_url, timeout=5) as response:
            return dict(json.load(response))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).resolve().parent


@contextmanager
def standalone_cluster(base: Path, workers: int = 2, cores: int = 1, worker_memory: str = "1g",
                       executor_memory: str = "768m", shuffle_partitions: int | None = None,
                       before_stop: Callable[[], object] | None = None) -> Iterator[Cluster]:
    """Start a master and ``workers`` workers of ``cores`` cores and ``worker_memory`` each under ``base`` (logs,
    work and scratch directories), wait until every worker has registered, yield the cluster, then stop it.

    Each worker runs one executor of ``executor_memory`` (Spark's floor is 450 MiB). ``shuffle_partitions`` (default
    Spark's) goes into the cluster's session settings. ``before_stop`` is called before the processes are stopped
    (a driver's session should end before its executors' workers do).
    """
    home = spark_home()
    (base / "conf").mkdir(parents=True, exist_ok=True)  # an empty SPARK_CONF_DIR: no spark-defaults.conf from elsewhere
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_CONF_DIR": str(base / "conf"), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_DAEMON_MEMORY": "256m", "SPARK_LOCAL_DIRS": str(base / "local"), "PYSPARK_PYTHON": sys.executable}
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(name: str, *args: str) -> None:
        log = base / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(home / "bin" / "spark-class"), *args], env=env, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)
        processes.append((process, log))

    port, ui = free_port(), free_port()
    master = f"spark://127.0.0.1:{port}"
    conf = [("spark.executor.memory", executor_memory), ("spark.executor.cores", str(cores)),
            ("spark.cores.max", str(workers * cores)), ("spark.driver.host", "127.0.0.1"),
            ("spark.driver.bindAddress", "127.0.0.1"), ("spark.local.dir", str(base / "local")),
            # No waiting for a task's preferred executor (a cached block's) when another one is free.
            ("spark.locality.wait", "0s")]
    if shuffle_partitions is not None:
        conf.append(("spark.sql.shuffle.partitions", str(shuffle_partitions)))
    cluster = Cluster(master, f"http://127.0.0.1:{ui}/json/", workers, tuple(conf))
    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(ui))
        for index in range(workers):
            start(f"worker-{index}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                  "--port", str(free_port()), "--webui-port", str(free_port()), "--cores", str(cores),
                  "--memory", worker_memory, "--work-dir", str(base / f"work-{index}"), master)
        _wait_for_workers(cluster, processes)
        yield cluster
    finally:
        if before_stop is not None:
            before_stop()
        for process, _ in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process, _ in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def _wait_for_workers(cluster: Cluster, processes: list[tuple[subprocess.Popen[bytes], Path]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        for process, log in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{log.stem} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if cluster.status().get("aliveworkers") == cluster.workers:
                return
        except OSError:
            pass  # the master's page is not up yet
        time.sleep(0.5)
    logs = "\n".join(f"--- {log.stem}\n{log.read_text()[-2000:]}" for _, log in processes)
    raise RuntimeError(f"{cluster.workers} workers did not register with {cluster.master} in {START_TIMEOUT:.0f} s\n"
                       f"{logs}")
