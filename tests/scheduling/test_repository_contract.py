"""The fake and the metadata store keep the same contract: one set of tests runs on both.

The service tests (``test_services_with_fakes.py``) are only as good as the fake is faithful; these
pin what both units of work do with schedules (SQLite always, PostgreSQL when configured).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from openseg.bootstrap import build_services
from openseg.config import Settings
from openseg.scheduling.model import Schedule
from openseg.scheduling.ports import SchedulingUnitOfWork
from openseg.store.tenancy import find_sandbox
from tests.conftest import BACKENDS, make_org
from tests.scheduling.fakes import FakeUnitOfWork, Scope

Units = Callable[[], SchedulingUnitOfWork]


@pytest.fixture(params=["fake", *BACKENDS])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Units, Scope]]:
    """Fresh units of work on one store, and a sandbox to put schedules in."""
    if request.param == "fake":
        unit = FakeUnitOfWork()
        yield (lambda: unit), Scope()
        return
    url = f"sqlite:///{tmp_path / 'openseg.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_schema_url")
    services = build_services(Settings(home=tmp_path / "home", database_url=url, lake=tmp_path / "home" / "lake"))
    try:
        org = make_org(services)
        with services.db.session() as session:
            sandbox = find_sandbox(session, org.org_id, "prod")
            assert sandbox is not None
        yield services.uow, Scope(org.org_id, sandbox.id)
    finally:
        services.db.dispose()


def schedule(scope: Scope, schedule_id: str, *, created: int = 1_000, type_: str = "batch_segmentation",
             state: str = "active") -> Schedule:
    return Schedule(id=schedule_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=schedule_id, type=type_,
                    properties={"segments": ["*"]}, schedule="0 0 1 * * ?", state=state, effective_from=created,
                    created=created, updated=created)


def test_what_is_committed_is_read_back(world: tuple[Units, Scope]) -> None:
    units, scope = world
    first, second = schedule(scope, "a-first", created=2_000), schedule(scope, "b-second", type_="export")
    with units() as uow:
        uow.schedules.add(first)
        uow.schedules.add(second)
        uow.commit()
    with units() as uow:
        assert uow.schedules.get("a-first") == first and uow.schedules.get("nope") is None
        assert uow.schedules.of_type(scope.sandbox_id, "export") == second
        assert uow.schedules.of_type("another-sandbox", "export") is None
        assert uow.schedules.page(scope.sandbox_id, start=0, limit=10) == ([second, first], 2)  # by creation
        assert uow.schedules.page(scope.sandbox_id, start=1, limit=10) == ([first], 2)
        changed = replace(first, name="renamed", properties={"segments": ["x"]}, last_job_id="job-9", next_run=5)
        uow.schedules.update(changed)
        uow.schedules.remove("b-second")
        uow.commit()
    with units() as uow:
        assert uow.schedules.get("a-first") == changed and uow.schedules.get("b-second") is None


def test_leaving_without_commit_writes_nothing(world: tuple[Units, Scope]) -> None:
    units, scope = world
    with units() as uow:
        uow.schedules.add(schedule(scope, "kept"))
        uow.commit()
    with pytest.raises(RuntimeError), units() as uow:
        uow.schedules.update(replace(schedule(scope, "kept"), name="lost"))
        uow.schedules.add(schedule(scope, "lost"))
        raise RuntimeError("boom")
    with units() as uow:
        uow.schedules.add(schedule(scope, "never committed"))
    with units() as uow:
        found = uow.schedules.get("kept")
        assert found is not None and found.name == "kept"
        assert uow.schedules.get("lost") is None and uow.schedules.get("never committed") is None


def test_active_schedules_and_claimed_fires(world: tuple[Units, Scope]) -> None:
    units, scope = world
    with units() as uow:
        for name, state in (("c", "active"), ("a", "active"), ("b", "inactive")):
            uow.schedules.add(schedule(scope, f"{scope.org_id}-{name}", state=state))
        uow.commit()
    with units() as uow:
        mine = [s.id for s in uow.schedules.active() if s.org_id == scope.org_id]
        assert mine == [f"{scope.org_id}-a", f"{scope.org_id}-c"]
        target = f"{scope.org_id}-a"
        assert uow.schedules.claim_fire(target, fire=5_000, ran_at=5_100) is True
        assert uow.schedules.claim_fire(target, fire=5_000, ran_at=5_200) is False  # one fire, one claim
        assert uow.schedules.claim_fire(target, fire=4_000, ran_at=5_300) is False  # never backwards
        uow.commit()
    with units() as uow:
        claimed = uow.schedules.get(f"{scope.org_id}-a")
        assert claimed is not None and (claimed.last_fire, claimed.last_run) == (5_000, 5_100)
        assert uow.schedules.claim_fire(claimed.id, fire=6_000, ran_at=6_000) is True
