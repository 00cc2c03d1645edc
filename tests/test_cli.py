"""The `openseg` command line, as contract.md describes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openseg.cli import app


def test_credentials_create_json(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["credentials", "create", "--org", "ACME@AdobeOrg", "--home", str(tmp_path), "--json"],
                           env={"OPENSEG_DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert set(body) == {"apiKey", "accessToken", "imsOrgId", "sandboxName", "openseg:sandboxOnly"}
    assert body["imsOrgId"] == "ACME@AdobeOrg" and body["sandboxName"] == "prod"
    assert body["openseg:sandboxOnly"] is False
    again = json.loads(runner.invoke(app, ["credentials", "create", "--org", "ACME@AdobeOrg", "--home", str(tmp_path),
                                           "--sandbox", "dev", "--json"], env={"OPENSEG_DATABASE_URL": ""}).output)
    assert again["sandboxName"] == "dev" and again["apiKey"] != body["apiKey"]
    assert (tmp_path / "openseg.db").exists()


def test_credentials_create_sandbox_only(tmp_path: Path) -> None:
    """--sandbox-only scopes the credentials to --sandbox; the API answers 403 in the org's other sandboxes
    (tests/api/test_tenancy_matrix.py)."""
    runner = CliRunner()
    result = runner.invoke(app, ["credentials", "create", "--org", "ACME@AdobeOrg", "--home", str(tmp_path),
                                 "--sandbox", "dev", "--sandbox-only", "--json"], env={"OPENSEG_DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["sandboxName"] == "dev" and body["openseg:sandboxOnly"] is True
    from openseg.store.tenancy import token_sandbox

    assert token_sandbox(body["accessToken"]) == "dev"


def test_pql_check_points_at_the_error() -> None:
    result = CliRunner().invoke(app, ["pql", "check", 'homeAddress.country = "US" and'])
    assert result.exit_code == 2
    assert "line 1, col 31: expected an expression" in result.output
    assert result.output.splitlines()[-1] == " " * 30 + "^"
    ok = CliRunner().invoke(app, ["pql", "check", 'homeAddress.country = "US"'])
    assert ok.exit_code == 0 and ok.output == 'ok: home address country is "US"\n'


def test_pql_sql_for_both_dialects() -> None:
    for dialect, quote in (("duckdb", '"'), ("spark", "`")):
        result = CliRunner().invoke(app, ["pql", "sql", 'homeAddress.country = "US"', "--dialect", dialect])
        assert result.exit_code == 0, result.output
        assert f"{quote}homeAddress{quote}" in result.output and "'US'" in result.output


def test_pql_eval_links_events_by_identity(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text("\n".join(json.dumps(p) for p in [
        {"_id": "ann", "identityMap": {"email": [{"id": "ann@x"}]}, "homeAddress": {"country": "US"}},
        {"_id": "bob", "identityMap": {"ECID": [{"id": "1"}]}, "homeAddress": {"country": "US"}},
        {"_id": "cat", "identityMap": {"ECID": [{"id": "2"}]}, "homeAddress": {"country": "FR"}},
    ]))
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e in [
        {"_id": "e1", "eventType": "commerce.purchases", "timestamp": "2026-01-10T00:00:00Z",
         "identityMap": {"ECID": [{"id": "1"}]}},
        {"_id": "e2", "eventType": "commerce.purchases", "timestamp": "2025-01-10T00:00:00Z",
         "identityMap": {"email": [{"id": "ann@x"}]}},
        {"_id": "e3", "eventType": "commerce.purchases", "timestamp": "2026-01-11T00:00:00Z",
         "identityMap": {"ECID": [{"id": "2"}]}},
    ]))
    expression = ('homeAddress.country = "US" and xEvent[eventType = "commerce.purchases" and '
                  'timestamp occurs <= 30 days before now].count() >= 1')
    result = CliRunner().invoke(app, ["pql", "eval", expression, "--profiles", str(profiles), "--events", str(events),
                                      "--now", "2026-01-20T00:00:00Z"])
    assert result.exit_code == 0, result.output
    assert result.output == "bob\n"


def test_query_and_export_commands(tmp_path: Path) -> None:
    from openseg.bootstrap import build_services
    from openseg.config import Settings
    from openseg.demo import ensure_demo

    services = build_services(Settings.from_env(home=tmp_path, env={}))
    ensure_demo(services, print_to=lambda _: None, profile_count=300, event_count=3000)
    env = {"OPENSEG_DATABASE_URL": ""}
    runner = CliRunner()
    counted = runner.invoke(app, ["query", "SELECT count(*) AS n FROM demo_profiles", "--org", "demo@AdobeOrg",
                                  "--home", str(tmp_path)], env=env)
    assert counted.exit_code == 0, counted.output
    assert "300" in counted.output and "1 row(s)" in counted.output
    refused = runner.invoke(app, ["query", "DELETE FROM demo_profiles", "--org", "demo@AdobeOrg",
                                  "--home", str(tmp_path)], env=env)
    assert refused.exit_code == 2 and "read-only" in refused.output
    from openseg.catalog import service as catalog
    from openseg.scope import Scope
    from openseg.store import tenancy
    from openseg.store.models import SegmentDefinition, SegmentJob

    with services.db.session() as session:
        sandbox = tenancy.find_sandbox(session, "demo@AdobeOrg", "prod")
        assert sandbox is not None
        scope = Scope("demo@AdobeOrg", sandbox.id)
        # Every demo event carries an identity of its profile: the store holds the 300 profiles, no event-only ones.
        (demo_job,) = session.query(SegmentJob).filter_by(sandbox_id=sandbox.id).all()
        assert demo_job.status == "SUCCEEDED" and demo_job.metrics["totalProfiles"] == 300
        target = catalog.create_dataset(session, scope, {"name": "audience", "schemaRef": {"id": catalog.UNION_SCHEMA}})
        us = session.query(SegmentDefinition).filter_by(sandbox_id=sandbox.id, name="US residents").one()
        target_id, us_id = target.id, us.id
    exported = runner.invoke(app, ["export", "--segment", us_id, "--dataset", target_id, "--org", "demo@AdobeOrg",
                                   "--fields", "homeAddress.country", "--wait", "--home", str(tmp_path)], env=env)
    assert exported.exit_code == 0, exported.output
    assert "SUCCEEDED: batches" in exported.output
    check = runner.invoke(app, ["query", "SELECT DISTINCT homeAddress.country AS c FROM audience", "--org",
                                "demo@AdobeOrg", "--home", str(tmp_path)], env=env)
    assert '"US"' not in check.output and "US" in check.output and "1 row(s)" in check.output
    services.db.dispose()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_a_worker_started_with_sigint_ignored_stops_on_sigint(tmp_path: Path) -> None:
    """A shell without job control starts ``openseg worker &`` with SIGINT ignored; once the worker has said it
    runs (its first line), ``kill -INT`` stops it gracefully. (A SIGINT sent before that, while it imports, is
    discarded by the kernel: a starter that may stop it at once starts it with SIGINT at its default, as
    ``openseg serve`` does.)"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSEG_")}
    worker = subprocess.Popen([sys.executable, "-m", "openseg", "worker", "--home", str(tmp_path)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, preexec_fn=_ignore_sigint)
    try:
        assert worker.stdout is not None
        first = worker.stdout.readline()
        assert first.startswith("openseg worker "), first + worker.stdout.read()
        worker.send_signal(signal.SIGINT)
        assert worker.wait(60) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
        worker.communicate()


def test_the_serving_commands_leave_what_start_up_made_out_of_garbage_collections(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A full collection of what imports leave (~200,000 objects) paused a process's requests and micro-batches by
    # 100-200 ms while streaming at 1M profiles (openseg.heap).
    import gc

    import uvicorn

    from openseg import bootstrap
    from openseg.worker.loop import Worker

    frozen: dict[str, int] = {}

    class Started:
        def run(self, stop: Any) -> None:
            frozen["streamer"] = gc.get_freeze_count()

    def serve_lanes(self: Worker) -> None:
        frozen["worker"] = gc.get_freeze_count()

    class Server:
        started = False

        def __init__(self, config: Any) -> None:
            pass

        def run(self) -> None:
            frozen["serve"] = gc.get_freeze_count()
            self.started = True

    monkeypatch.setattr(bootstrap, "streamer", lambda services: Started())
    monkeypatch.setattr(Worker, "serve_lanes", serve_lanes)
    # uvicorn's Config would set up logging in this test's process (whose handlers are pytest's).
    monkeypatch.setattr(uvicorn, "Config", lambda app, **options: None)
    monkeypatch.setattr(uvicorn, "Server", Server)
    env = {"OPENSEG_API_PROCESSES": "0", "OPENSEG_WORKER_MODE": "thread"}
    monkeypatch.setattr(signal, "signal", lambda *handling: None)  # the commands' SIGINT handling: not this process's
    try:
        for command in ("streamer", "worker", "serve"):
            gc.unfreeze()
            result = CliRunner().invoke(app, [command, "--home", str(tmp_path / command)], env=env)
            assert result.exit_code == 0, result.output
    finally:
        gc.unfreeze()  # this test's process goes on collecting as before
    assert frozen.keys() == {"streamer", "worker", "serve"}
    assert min(frozen.values()) > 50_000, frozen


def test_serve_logs_each_request_and_exits_3_when_its_port_is_taken(tmp_path: Path) -> None:
    """``openseg serve`` writes uvicorn's line per request (from a thread of its own, ``openseg.log_thread``) and,
    as ``uvicorn.run`` does, exits with status 3 when it cannot start."""
    import time

    import httpx

    from tests.e2e.server import free_port

    port = free_port()
    env = {**os.environ, "OPENSEG_API_PROCESSES": "0", "OPENSEG_WORKER_MODE": "thread", "OPENSEG_STREAMER": "off"}
    command = [sys.executable, "-m", "openseg", "serve", "--home", str(tmp_path / "home"), "--port", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        first = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert first.poll() is None, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        line = '"GET /health HTTP/1.1" 200 OK'
        while line not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert second.returncode == 3, second.stdout + second.stderr
        assert "address already in use" in (second.stdout + second.stderr).lower()
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(60)
    assert first.returncode == 0, log.read_text()
    assert "Finished server process" in log.read_text()
