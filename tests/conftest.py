"""Shared fixtures: the metadata store on SQLite and PostgreSQL, the app, credentials, the worker."""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from openseg.api.app import create_app
from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.container import Services
from openseg.store.models import Base
from openseg.store.tenancy import issue_credentials

PG_URL = os.environ.get("OPENSEG_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])


def pytest_configure(config: pytest.Config) -> None:
    """Hear SIGINT in a test run started in the background by a shell without job control (``make test &``, a
    CI step), which starts it with SIGINT ignored. Every process a test starts would inherit that, and the
    kernel discards an ignored signal: an ``openseg worker`` a test stops with SIGINT soon after starting it
    (before its imports are done and it sets its own handler) never heard the stop. Handled here, SIGINT is
    at its default in the processes tests start, as from a terminal."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def pg_schema_url(worker_id: str) -> Iterator[str]:
    """A PostgreSQL schema of this test worker's own, migrated once per run."""
    schema = f"openseg_test_{worker_id}".replace("-", "_")
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    separator = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{separator}options=-csearch_path%3D{schema}"
    yield url
    admin = create_engine(PG_URL)
    with admin.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'openseg.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    engine = create_engine(url)
    # The worker's schema is migrated once per run; each test starts on it empty, as on SQLite (rows an
    # earlier test left, such as its queued work or its published stores, point into that test's lake).
    with engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            if connection.execute(text(f"SELECT to_regclass('{table.name}')")).scalar():
                connection.execute(table.delete())
    engine.dispose()
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    home = tmp_path / "home"
    return Settings(home=home, database_url=database_url, lake=home / "lake")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    svc = build_services(settings)
    yield svc
    svc.db.dispose()


@pytest.fixture
def app(services: Services) -> FastAPI:
    return create_app(services, run_worker=False)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Org:
    org_id: str
    api_key: str
    token: str

    def headers(self, sandbox: str | None = "prod") -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.token}",
            "x-api-key": self.api_key,
            "x-gw-ims-org-id": self.org_id,
        }
        if sandbox is not None:
            headers["x-sandbox-name"] = sandbox
        return headers


def make_org(services: Services, sandbox: str = "prod") -> Org:
    org_id = f"{uuid.uuid4().hex[:12].upper()}@AdobeOrg"
    with services.db.session() as session:
        issued = issue_credentials(session, org_id, sandbox)
    return Org(org_id=org_id, api_key=issued.api_key, token=issued.access_token)


@contextmanager
def own_home(home: Path, metadata_dir: Path | None = None, **settings: object) -> Iterator[tuple[Services, Org, TestClient]]:
    """A service over its own ``home`` (lake inside it; the SQLite metadata file in ``metadata_dir``, default
    the home), an org with credentials, and a client of its app without the worker thread (tests drain, or
    start a worker process)."""
    database = metadata_dir or home
    services = build_services(Settings(home=home, database_url=f"sqlite:///{database}/openseg.db", lake=home / "lake",
                                       **settings))  # type: ignore[arg-type]  # test-only overrides, by name
    try:
        with TestClient(create_app(services, run_worker=False)) as client:
            yield services, make_org(services), client
    finally:
        services.db.dispose()


@pytest.fixture
def org(services: Services) -> Org:
    return make_org(services)


@pytest.fixture
def headers(org: Org) -> dict[str, str]:
    return org.headers()


@pytest.fixture
def drain(services: Services):  # type: ignore[no-untyped-def]
    """Run every queued work item now, as the worker thread would."""
    assert services.worker is not None
    return services.worker.run_until_idle
