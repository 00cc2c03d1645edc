"""A sandbox has exactly one default merge policy, however many first requests race for it.

Found by the aepp end-to-end test: the worker's first profile build and a definition created meanwhile each
found no default policy and each added one, so lookups read one policy while definitions and jobs were bound to
the other (entities without ``segmentMembership`` after a successful job).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

from openseg.container import Services
from openseg.profiles.defaults import default_policy
from openseg.scope import Scope
from openseg.store.db import MIGRATIONS, migrate
from openseg.store.repositories import SqlAlchemyMergePolicyRepository
from openseg.store.tenancy import find_sandbox
from tests.conftest import Org


def test_two_first_needs_of_the_default_policy_get_the_same_one(
        services: Services, org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    with services.db.session() as session:
        sandbox = find_sandbox(session, org.org_id, "prod")
        assert sandbox is not None
        scope = Scope(org_id=org.org_id, sandbox_id=sandbox.id)
    # Both units of work read the sandbox's policies before either writes: the interleaving of the race.
    both_read = threading.Barrier(2, timeout=10)
    read = SqlAlchemyMergePolicyRepository.in_sandbox

    def in_sandbox(self: SqlAlchemyMergePolicyRepository, sandbox_id: str) -> list:  # type: ignore[type-arg]
        found = read(self, sandbox_id)
        both_read.wait()
        return found

    monkeypatch.setattr(SqlAlchemyMergePolicyRepository, "in_sandbox", in_sandbox)
    got: list[str] = []

    def need() -> None:
        with services.uow() as uow:
            got.append(default_policy(uow.merge_policies, scope).id)
            uow.commit()

    threads = [threading.Thread(target=need) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monkeypatch.undo()
    with services.uow() as uow:
        defaults = [p.id for p in uow.merge_policies.in_sandbox(sandbox.id) if p.is_default]
    assert len(defaults) == 1
    assert got == defaults * 2


def test_a_sandbox_created_through_the_api_has_its_default_policy(services: Services, org: Org) -> None:
    from fastapi.testclient import TestClient

    from openseg.api.app import create_app

    with TestClient(create_app(services, run_worker=False)) as client:
        created = client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                              json={"name": "dev", "title": "Dev", "type": "development"})
        assert created.status_code == 201, created.text
        with services.uow() as uow:
            policies = uow.merge_policies.in_sandbox(created.json()["id"])
        assert [(p.name, p.is_default, p.identity_graph) for p in policies] == [("Default timestamp-ordered", True, "pdg")]


def test_the_migration_gives_older_sandboxes_without_one_their_default(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0008")
        connection.execute(text("INSERT INTO orgs (id, created) VALUES ('OLD@AdobeOrg', 1)"))
        for sandbox_id, name in (("s-without", "prod"), ("s-with", "dev")):
            connection.execute(text(
                "INSERT INTO sandboxes (id, org_id, name, title, type, is_default, state, created, updated) "
                "VALUES (:id, 'OLD@AdobeOrg', :name, :name, 'production', false, 'active', 1, 1)"),
                {"id": sandbox_id, "name": name})
        connection.execute(text(
            "INSERT INTO merge_policies (id, org_id, sandbox_id, name, schema_name, identity_graph, attribute_merge, "
            "is_default, is_active_on_edge, version, created, updated) VALUES ('kept', 'OLD@AdobeOrg', 's-with', "
            "'mine', '_xdm.context.profile', 'none', '{\"type\": \"timestampOrdered\"}', true, false, 1, 1, 1)"))
    migrate(engine)
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT sandbox_id, name, identity_graph, is_default FROM merge_policies "
                                       "ORDER BY sandbox_id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("s-with", "mine", "none", True),
                                        ("s-without", "Default timestamp-ordered", "pdg", True)]
