"""Spark Connect: a Connect server started from the installed pyspark on loopback, and openseg as its client.

Ingestion, the merged-profile build, segment jobs and exports run with ``OPENSEG_ENGINE=spark`` against
``sc://127.0.0.1:PORT``: the server's application (its driver and executors, all in the server's JVM) reads and
writes every file, and this process holds no SparkContext. The results are compared with DuckDB's with the
flows of tests/e2e/test_spark_cluster.py. One process can switch between a classic session and a Connect one.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlglot import exp

from openseg.config import Settings
from openseg.engines.spark import APPLICATION_CONFIG, SparkEngine, SparkWorkspace, get_spark_session, stop_spark_session
from openseg.engines.standalone import free_port, spark_home
from tests.e2e import test_spark_cluster as cluster_flows
from tests.e2e import test_spark_engine as flows
from tests.engines.test_engines import NUMBERED, numbered_rows

pytestmark = [pytest.mark.spark, pytest.mark.xdist_group("spark")]

#: How long the server may take to come up (a JVM start on a busy two-core machine).
START_TIMEOUT = 180.0
#: The session settings openseg sends (OPENSEG_SPARK_CONF): two shuffle partitions for tiny data.
CONF = (("spark.sql.shuffle.partitions", "2"),)


@dataclass(frozen=True)
class ConnectServer:
    """A running Spark Connect server: the URL clients use (with a parameter, which job metrics leave out), the
    URL metrics show, and its application's REST API (the server's UI), which names the application."""

    url: str
    public_url: str
    ui: str

    def application_id(self) -> str:
        with urllib.request.urlopen(f"{self.ui}/api/v1/applications", timeout=10) as response:
            [application] = json.load(response)
        return str(application["id"])


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConnectServer]:
    """A Connect server (``local[2]`` inside it, started with openseg's application settings) in a process group
    of its own; the finalizer ends this process's Connect session, then the server, and waits for it."""
    base = tmp_path_factory.mktemp("spark-connect")
    home = spark_home()
    (base / "conf").mkdir()  # an empty SPARK_CONF_DIR: no spark-defaults.conf from elsewhere
    env = {**os.environ, "SPARK_HOME": str(home), "SPARK_CONF_DIR": str(base / "conf"), "SPARK_LOCAL_IP": "127.0.0.1",
           "SPARK_LOCAL_DIRS": str(base / "local"), "SPARK_CONNECT_MODE": "0"}
    port, ui = free_port(), free_port()
    settings = {**APPLICATION_CONFIG, "spark.ui.enabled": "true", "spark.ui.port": str(ui),
                "spark.connect.grpc.binding.address": "127.0.0.1", "spark.connect.grpc.binding.port": str(port)}
    log = base / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
             "--name", "Spark Connect server", "--master", "local[2]", "--driver-memory", "1g",
             *[arg for name, value in settings.items() for arg in ("--conf", f"{name}={value}")]],
            env=env, cwd=base, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    server = ConnectServer(f"sc://127.0.0.1:{port}/;user_id=openseg", f"sc://127.0.0.1:{port}", f"http://127.0.0.1:{ui}")
    try:
        _wait_for(server, process, log)
        yield server
    finally:
        stop_spark_session()  # the session ends before its server; later tests start the local one they ask for
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def _wait_for(server: ConnectServer, process: subprocess.Popen[bytes], log: Path) -> None:
    """Until the server answers on its port and its application is listed."""
    deadline = time.monotonic() + START_TIMEOUT
    port = int(server.public_url.rsplit(":", 1)[1])
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the Connect server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        if b"Spark Connect server started" in log.read_bytes():
            with socket.socket() as sock:
                listening = sock.connect_ex(("127.0.0.1", port)) == 0
            try:
                if listening and server.application_id():
                    return
            except OSError:
                pass  # the UI is not up yet
        time.sleep(0.5)
    raise RuntimeError(f"the Connect server did not start in {START_TIMEOUT:.0f} s\n{log.read_text()[-3000:]}")


@pytest.fixture
def on_connect(connect_server: ConnectServer, monkeypatch: pytest.MonkeyPatch) -> ConnectServer:
    """The flows of test_spark_engine.py with their Spark runs sent to the Connect server."""
    monkeypatch.setattr(flows, "Settings", functools.partial(Settings, spark_master=connect_server.url, spark_conf=CONF))
    return connect_server


def test_spark_connect_writes_the_same_membership_and_export_files_as_duckdb(tmp_path: Path, on_connect: ConnectServer,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from pyspark.core.context import SparkContext
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    checkpoints: list[str] = []
    checkpoint = SparkWorkspace._checkpoint

    def recorded_checkpoint(workspace: SparkWorkspace, name: str, query: exp.Query) -> None:
        checkpoints.append(name)
        checkpoint(workspace, name, query)

    monkeypatch.setattr(SparkWorkspace, "_checkpoint", recorded_checkpoint)
    on_duckdb = cluster_flows._pipeline(tmp_path, "duckdb")
    on_spark = cluster_flows._pipeline(tmp_path, "spark")
    # Both builds stitched identities on the server: rounds of labels, each checkpointed there.
    assert checkpoints.count("__roots_edges") == 2 and checkpoints.count("__roots_0") == 2
    cluster_flows.assert_same_files(on_duckdb, on_spark)
    # Every job, export and build names the server (without its URL's parameters) and the server's application.
    spark = {"name": "spark", "master": on_connect.public_url, "applicationId": on_connect.application_id()}
    assert on_spark["engines"] == {"job": [spark] * 2, "export": [spark] * 3, "build": [spark] * 2}
    # The session was a Connect client's, with OPENSEG_SPARK_CONF's settings over openseg's own; no SparkContext
    # (no JVM driver) ran in this process.
    session = get_spark_session()
    assert isinstance(session, ConnectSession)
    assert [session.conf.get(name) for name in ("spark.sql.shuffle.partitions", "spark.sql.session.timeZone",
                                                "spark.sql.ansi.enabled")] == ["2", "UTC", "false"]
    assert SparkContext._active_spark_context is None


def test_one_process_switches_between_a_local_session_and_spark_connect(tmp_path: Path,
                                                                        connect_server: ConnectServer) -> None:
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    local, remote = SparkEngine("local[2]"), SparkEngine(connect_server.url, CONF)
    assert numbered_rows(local, tmp_path / "local") == NUMBERED
    assert local.describe()["master"] == "local[2]"
    assert numbered_rows(remote, tmp_path / "remote") == NUMBERED
    assert isinstance(get_spark_session(), ConnectSession)
    assert remote.describe() == {"name": "spark", "master": connect_server.public_url,
                                 "applicationId": connect_server.application_id()}
    assert local.describe() == {"name": "spark", "master": "local[2]"}  # its session has stopped
    # Back on a classic session (Connect mode is off again): the shared local session later tests use.
    assert numbered_rows(local, tmp_path / "again") == NUMBERED
    session = get_spark_session()
    assert not isinstance(session, ConnectSession) and session.sparkContext.master == "local[2]"
    assert session.conf.get("spark.sql.shuffle.partitions") == "4"
    assert "SPARK_CONNECT_MODE_ENABLED" not in os.environ
