"""The ``openseg`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from openseg.config import Settings

app = typer.Typer(help="openseg: customer segmentation speaking AEP's APIs.", no_args_is_help=True)
credentials_app = typer.Typer(help="API keys and access tokens.", no_args_is_help=True)
app.add_typer(credentials_app, name="credentials")

HomeOption = Annotated[Optional[Path], typer.Option("--home", help="state directory (env OPENSEG_HOME)")]


def _settings(home: Path | None, **overrides: object) -> Settings:
    return Settings.from_env(home=home, **overrides)


@app.command()
def serve(
    home: HomeOption = None,
    host: Annotated[Optional[str], typer.Option(help="bind address (env OPENSEG_HOST)")] = None,
    port: Annotated[Optional[int], typer.Option(help="port (env OPENSEG_PORT)")] = None,
    demo: Annotated[bool, typer.Option("--demo", help="load demo data and print ready-to-use credentials")] = False,
    no_worker: Annotated[bool, typer.Option("--no-worker", help="do not run jobs in this process")] = False,
) -> None:
    """Serve the HTTP API (with the worker and scheduler inside unless --no-worker)."""
    import uvicorn

    from openseg.api.app import create_app
    from openseg.bootstrap import build_services

    settings = _settings(home, host=host, port=port)
    services = build_services(settings)
    if demo:
        from openseg.demo import ensure_demo

        ensure_demo(services, print_to=typer.echo)
    uvicorn.run(create_app(services, run_worker=not no_worker), host=settings.host, port=settings.port,
                log_level="info")


@app.command()
def worker(home: HomeOption = None) -> None:
    """Run job workers and the scheduler alone (several may share one PostgreSQL)."""
    from openseg.bootstrap import build_services

    services = build_services(_settings(home))
    assert services.worker is not None
    typer.echo(f"openseg worker {services.worker.worker_id} on {services.settings.database_url.split('@')[-1]}")
    try:
        services.worker.serve_forever()
    except KeyboardInterrupt:
        pass


@credentials_app.command("create")
def credentials_create(
    org: Annotated[str, typer.Option("--org", help="IMS org id, e.g. ACME@AdobeOrg")],
    sandbox: Annotated[str, typer.Option("--sandbox", help="sandbox name")] = "prod",
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Create (or reuse) the org and sandbox, and a new API key + access token."""
    from openseg.bootstrap import build_services
    from openseg.store.tenancy import issue_credentials

    services = build_services(_settings(home))
    with services.db.session() as session:
        issued = issue_credentials(session, org, sandbox)
    if as_json:
        typer.echo(json.dumps(issued.to_json()))
    else:
        for key, value in issued.to_json().items():
            typer.echo(f"{key}: {value}")
    services.db.dispose()


def main() -> None:  # pragma: no cover
    app()
