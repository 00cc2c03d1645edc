"""The ``openseg`` command line."""

from __future__ import annotations

import contextlib
import importlib
import json
import signal
from pathlib import Path
from typing import Annotated, Any

import typer

from openseg.config import Settings
from openseg.heap import freeze_start_up
from openseg.pql_cli import app as pql_app

app = typer.Typer(help="openseg: customer segmentation speaking AEP's APIs.", no_args_is_help=True)
credentials_app = typer.Typer(help="API keys and access tokens.", no_args_is_help=True)
app.add_typer(credentials_app, name="credentials")
app.add_typer(pql_app, name="pql")
streaming_app = typer.Typer(help="Streaming ingestion: inlets (AEP's streaming connections).", no_args_is_help=True)
app.add_typer(streaming_app, name="streaming")
datastreams_app = typer.Typer(help="Datastreams: what the Edge Network's /ee/v2 routes are configured by.",
                              no_args_is_help=True)
app.add_typer(datastreams_app, name="datastreams")

#: ``openseg serve``'s exit status when the server could not start (the port taken, say): uvicorn's.
STARTUP_FAILURE = 3

HomeOption = Annotated[Path | None, typer.Option("--home", help="state directory (env OPENSEG_HOME)")]


def _stop_on_sigint() -> None:
    """Stop gracefully on SIGINT even when started with it ignored: a shell without job control starts
    ``openseg worker &`` so, and then ``kill -INT`` (and ``openseg serve``'s stop of its worker) did nothing.

    Until this runs (after the command's imports), a SIGINT of a process started so is discarded by the
    kernel: a starter that may stop it at once starts it with SIGINT at its default (``openseg serve`` does,
    ``worker.process``), or waits for its first line."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _settings(home: Path | None, **overrides: object) -> Settings:
    return Settings.from_env(None, home=home, **overrides)


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[str | None, typer.Option(help="bind address (env OPENSEG_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (env OPENSEG_PORT)")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="load demo data and print ready-to-use credentials")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="run no worker: jobs run in `openseg worker`s")] = False,
) -> None:
    """Serve the HTTP API, with the worker (jobs, the scheduler, the streamer) in a child process (or in this
    one's threads: OPENSEG_WORKER_MODE=thread) unless --no-worker, and edge calls and profile lookups in
    OPENSEG_API_PROCESSES processes each (0: in this one's threads)."""
    import uvicorn

    from openseg.api.app import create_app
    from openseg.api.lanes import PROCESS_LANES, LaneProcesses
    from openseg.bootstrap import build_services
    from openseg.log_thread import logged_by_a_thread
    from openseg.worker.process import WorkerProcess

    settings = _settings(home, host=host, port=port)
    services = build_services(settings)
    if demo:
        from openseg.demo import ensure_demo

        ensure_demo(services, print_to=typer.echo)  # loaded here before serving, so "ready" means loaded
    in_process = not no_worker and settings.worker_mode == "thread"
    child = WorkerProcess(settings) if not no_worker and not in_process else None
    lanes = (LaneProcesses(settings, dict.fromkeys(PROCESS_LANES, settings.api_processes))
             if settings.api_processes else None)
    served = create_app(services, run_worker=in_process, worker_process=child, lane_processes=lanes)
    # What uvicorn.run does, with its log lines (one per request) written by threads, not by the event loop.
    server = uvicorn.Server(uvicorn.Config(served, host=settings.host, port=settings.port, log_level="info"))
    freeze_start_up()
    with logged_by_a_thread(("uvicorn", "uvicorn.error", "uvicorn.access")), contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        raise typer.Exit(STARTUP_FAILURE)


@app.command()
def worker(home: HomeOption = None) -> None:
    """Run job workers and the scheduler alone (several may share one PostgreSQL)."""
    from openseg.bootstrap import build_services

    _stop_on_sigint()
    services = build_services(_settings(home))
    assert services.worker is not None
    freeze_start_up()
    try:  # from the first line it prints, a SIGINT stops it gracefully
        typer.echo(f"openseg worker {services.worker.worker_id} on {services.settings.database_url.split('@')[-1]}")
        services.worker.serve_lanes()
    except KeyboardInterrupt:
        pass


@credentials_app.command("create")
def credentials_create(
    org: Annotated[str, typer.Option("--org", help="IMS org id, e.g. ACME@AdobeOrg")],
    sandbox: Annotated[str, typer.Option("--sandbox", help="sandbox name")] = "prod",
    sandbox_only: Annotated[bool, typer.Option(
        "--sandbox-only", help="scope the credentials to --sandbox (403 in the org's other sandboxes)")] = False,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create (or reuse) the org and sandbox, and a new API key + access token (for every sandbox of the org
    unless --sandbox-only)."""
    from openseg.bootstrap import build_services
    from openseg.store.tenancy import issue_credentials

    services = build_services(_settings(home))
    with services.db.session() as session:
        issued = issue_credentials(session, org, sandbox, sandbox_only=sandbox_only)
    if as_json:
        typer.echo(json.dumps(issued.to_json()))
    else:
        for key, value in issued.to_json().items():
            typer.echo(f"{key}: {value}")
    services.db.dispose()


def main() -> None:  # pragma: no cover
    app()


def _scope(services, org: str, sandbox: str):  # type: ignore[no-untyped-def]
    from openseg.scope import Scope
    from openseg.store import tenancy

    with services.db.session() as session:
        found = tenancy.find_sandbox(session, org, sandbox)
        if found is None:
            typer.echo(f"sandbox '{sandbox}' of org '{org}' does not exist", err=True)
            raise typer.Exit(2)
        return Scope(org, found.id)


OrgOption = Annotated[str, typer.Option("--org", help="IMS org id")]
SandboxOption = Annotated[str, typer.Option("--sandbox", help="sandbox name")]


@app.command()
def query(
    sql: Annotated[str, typer.Argument(help="a read-only SELECT over the sandbox's datasets")],
    org: OrgOption,
    sandbox: SandboxOption = "prod",
    home: HomeOption = None,
    limit: Annotated[int, typer.Option(help="rows to print")] = 50,
) -> None:
    """Run a Query Service query and print the rows (datasets are tables named after the dataset)."""
    from rich.console import Console
    from rich.table import Table

    from openseg.bootstrap import build_services
    from openseg.catalog import query_jobs
    from openseg.errors import OpensegError

    services = build_services(_settings(home))
    scope = _scope(services, org, sandbox)
    try:
        with services.db.session() as session:
            submitted = query_jobs.submit_query(session, scope, {"sql": sql, "name": "cli"}, client="openseg CLI")
            query_id = submitted.id
    except OpensegError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    query_jobs.execute(services, query_id)
    with services.db.session() as session:
        done = query_jobs.get_query(session, scope, query_id)
        if done.state != "SUCCESS":
            typer.echo("; ".join(e["message"] for e in done.errors), err=True)
            raise typer.Exit(1)
        result = query_jobs.query_results(done, start=0, limit=limit)
    table = Table(*[c["name"] for c in result["columns"]])
    for row in result["rows"]:
        table.add_row(*[json.dumps(v) if isinstance(v, dict | list) else str(v) for v in row])
    console = Console()
    console.print(table)
    console.print(f"{result['rowCount']} row(s)")


@app.command()
def export(
    segment: Annotated[list[str], typer.Option("--segment", help="segment definition id (repeatable)")],
    dataset: Annotated[str, typer.Option("--dataset", help="destination dataset id (profile__union)")],
    org: OrgOption,
    sandbox: SandboxOption = "prod",
    fields: Annotated[str | None, typer.Option(help="comma-separated field paths")] = None,
    per_batch: Annotated[bool, typer.Option("--segment-per-batch", help="one batch per segment")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="run/await the export and show progress")] = False,
    home: HomeOption = None,
) -> None:
    """Export segment members into a dataset (AEP's export job)."""
    import time

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from openseg.bootstrap import build_services
    from openseg.errors import OpensegError
    from openseg.exports import jobs as exports
    from openseg.store.models import ExportJob

    services = build_services(_settings(home))
    scope = _scope(services, org, sandbox)
    body: dict[str, object] = {
        "filter": {"segments": [{"segmentId": s} for s in segment]},
        "destination": {"datasetId": dataset, "segmentPerBatch": per_batch},
        "schema": {"name": "_xdm.context.profile"},
    }
    if fields:
        body["fields"] = fields
    try:
        job_id = exports.create_export(services.uow(), scope, body, origin="cli").id
    except OpensegError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"export job {job_id} created")
    if not wait:
        return
    assert services.worker is not None
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn()) as progress:
        task = progress.add_task(f"export {job_id}: NEW", total=None)
        while True:
            with services.db.session() as session:
                job = session.get(ExportJob, job_id)
                assert job is not None
                status, destination, errors = job.status, job.destination, job.errors
            progress.update(task, description=f"export {job_id}: {status}")
            if status in exports.TERMINAL:
                break
            if not services.worker.run_once():  # no server worker took it: run it here
                time.sleep(0.2)
    if status != "SUCCEEDED":
        typer.echo(f"export {job_id} {status}: {'; '.join(e['msg'] for e in errors)}", err=True)
        raise typer.Exit(1)
    batches = [b["batchId"] for b in destination.get("batches", [])] or [destination["batchId"]]
    typer.echo(f"export {job_id} SUCCEEDED: batches {', '.join(batches)}")


@app.command()
def explain(
    segment: Annotated[str, typer.Argument(help="segment definition id")],
    entity: Annotated[str, typer.Option("--entity", help="an identity of the profile, e.g. ann@example.com")],
    ns: Annotated[str, typer.Option("--ns", help="the identity's namespace, e.g. email")],
    org: OrgOption,
    sandbox: SandboxOption = "prod",
    as_json: Annotated[bool, typer.Option("--json", help="print the JSON body the HTTP API answers")] = False,
    home: HomeOption = None,
) -> None:
    """Why a profile is or is not in a segment: each condition of its expression, true or false for it."""
    from openseg import inspection
    from openseg.bootstrap import build_services
    from openseg.errors import OpensegError

    services = build_services(_settings(home))
    try:
        body = inspection.explain_segment(services, _scope(services, org, sandbox), segment, ns, entity)
    except OpensegError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    finally:
        services.db.dispose()
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    membership = body["membership"]
    held = f"{membership['status']} since {membership['lastQualificationTime']}" if membership else "not a member"
    agreement = "agrees" if body["agreesWithMembership"] else f"differs: {body['reason']}"
    typer.echo(f"segment {segment}, profile {body['profileId']}, at {body['asOf']}")
    typer.echo(f"qualifies: {'yes' if body['qualifies'] else 'no'}; last job: {held} ({agreement})")
    for line in _condition_lines(body["explanation"], entity, ns):
        typer.echo(line)


def _condition_lines(node: dict[str, Any], entity: str, ns: str, depth: int = 0) -> list[str]:
    """One line per condition, indented under its and / or / not: its value, PQL, English and evidence."""
    notes = []
    if "found" in node:
        notes.append(f"found {json.dumps(node['found'])}")
    events = node.get("events")
    if isinstance(events, dict):
        sample = f": {', '.join(events['sample'])}" if events["sample"] else ""
        notes.append(f"{events['matched']} matching event(s){sample}")
    if "segmentId" in node:
        notes.append(f"see openseg explain {node['segmentId']} --entity {entity} --ns {ns}")
    evidence = f" [{'; '.join(notes)}]" if notes else ""
    lines = [f"{'  ' * depth}{'✓' if node['value'] else '✗'} {node['pql']}  — {node['description']}{evidence}"]
    for child in node["children"]:
        lines += _condition_lines(child, entity, ns, depth + 1)
    return lines


@streaming_app.command("create")
def streaming_create(
    dataset: Annotated[str, typer.Option("--dataset", help="the dataset id the inlet writes to")],
    org: OrgOption,
    sandbox: SandboxOption = "prod",
    name: Annotated[str, typer.Option("--name", help="the connection's name")] = "openseg streaming",
    authenticated: Annotated[bool, typer.Option(
        "--authenticated", help="messages must carry the org's credentials")] = False,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="the server's public address (default http://OPENSEG_HOST:OPENSEG_PORT)")] = None,
    home: HomeOption = None,
) -> None:
    """Create a streaming connection to a dataset and print its inlet URL (POST messages there)."""
    from openseg.bootstrap import build_services
    from openseg.clock import now_ms
    from openseg.errors import OpensegError
    from openseg.streaming import connections

    services = build_services(_settings(home))
    scope = _scope(services, org, sandbox)
    store = services.streaming_store()
    body = {"name": name, "connectionSpec": {"id": connections.STREAMING_SPEC_ID, "version": "1.0"},
            "auth": {"specName": connections.SPEC_NAME,
                     "params": {"dataType": "xdm", "name": name, "datasetId": dataset,
                                "authenticationRequired": authenticated}}}
    try:
        created = connections.create_connection(store, store, connections.Where(org, scope.sandbox_id, sandbox),
                                                body, now_ms())
    except OpensegError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    finally:
        services.db.dispose()
    settings = services.settings
    typer.echo(f"connection {created.id}")
    typer.echo(connections.inlet_url(base_url or f"http://{settings.host}:{settings.port}", created))


@datastreams_app.command("create")
def datastreams_create(
    dataset: Annotated[str, typer.Option("--dataset", help="the ExperienceEvent dataset the edge writes to")],
    org: OrgOption,
    sandbox: SandboxOption = "prod",
    name: Annotated[str, typer.Option("--name", help="the datastream's name")] = "openseg edge",
    merge_policy: Annotated[str | None, typer.Option(
        "--merge-policy", help="a merge policy active on edge (default: the sandbox's)")] = None,
    home: HomeOption = None,
) -> None:
    """Create a datastream and print its id (the dataStreamId of /ee/v2/interact and /ee/v2/collect)."""
    from openseg.bootstrap import build_services
    from openseg.clock import new_uuid, now_ms
    from openseg.errors import OpensegError
    from openseg.store.datastreams import SqlAlchemyDatastreams
    from openseg.streaming import datastreams

    services = build_services(_settings(home))
    scope = _scope(services, org, sandbox)
    store = SqlAlchemyDatastreams(services.db)
    body = {"name": name, "datasetId": dataset, **({"mergePolicyId": merge_policy} if merge_policy else {})}
    try:
        created = datastreams.create_datastream(store, store, org, scope.sandbox_id, sandbox, body,
                                                datastream_id=new_uuid(), now=now_ms())
    except OpensegError as exc:
        typer.echo(exc.detail, err=True)
        raise typer.Exit(2) from exc
    finally:
        services.db.dispose()
    typer.echo(f"datastream {created.id}")


@app.command()
def streamer(home: HomeOption = None) -> None:
    """Run the streamer alone: it flushes this host's stream log into lake batches (``openseg serve`` and
    ``openseg worker`` run one too; one per host flushes at a time)."""
    import threading

    from openseg.bootstrap import build_services
    from openseg.bootstrap import streamer as make_streamer

    _stop_on_sigint()
    services = build_services(_settings(home))
    importlib.import_module("pandas")  # which pyarrow's compute functions import on first use: before messages wait
    freeze_start_up()
    typer.echo(f"openseg streamer on {services.stream_log().path}")
    stop = threading.Event()
    try:
        make_streamer(services).run(stop)
    except KeyboardInterrupt:
        stop.set()
