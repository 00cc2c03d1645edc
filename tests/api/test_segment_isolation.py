"""A segment that cannot be evaluated fails alone: the job reports it in ``errors[]``, keeps its previous
membership, and completes every other segment (issue #19)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlglot import exp

from openseg.segmentation import evaluate
from openseg.segmentation.planner import Plan
from tests.api.flows import person
from tests.api.test_definitions import define
from tests.api.test_segment_jobs import JOBS, load_people, run_job
from tests.conftest import Org

ENTITIES = "/data/core/ups/access/entities"


@pytest.fixture
def breaks(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, exp.Expr]]:
    """Segment id -> the expression its condition is replaced with in every plan (a fault the engine raises)."""
    broken: dict[str, exp.Expr] = {}
    real = evaluate.plan_segments

    def plan_segments(*args: Any, **kwargs: Any) -> Plan:
        plan = real(*args, **kwargs)
        targets = {plan.columns[s]: fault for s, fault in broken.items() if s in plan.columns}

        def swap(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Alias) and node.alias in targets:
                return exp.alias_(targets[node.alias].copy(), node.alias, quoted=True)
            return node

        return dataclasses.replace(plan, final=plan.final.transform(swap), query=plan.query.transform(swap))

    monkeypatch.setattr(evaluate, "plan_segments", plan_segments)
    yield broken


def members(client: TestClient, org: Org, segment_id: str) -> dict[str, str]:
    """Profile email -> status in ``segment_id``, for people 0-5."""
    found = {}
    for i in range(6):
        body = client.get(f"{ENTITIES}?schema.name=_xdm.context.profile&entityId=p{i}@example.com&entityIdNS=email",
                          headers=org.headers()).json()
        (entity,) = body.values()
        status = entity["entity"].get("segmentMembership", {}).get("ups", {}).get(segment_id, {}).get("status")
        if status:
            found[f"p{i}"] = status
    return found


@pytest.mark.parametrize("fault", ["binder", "runtime"])
def test_a_segment_the_engine_fails_on_fails_alone_and_keeps_its_membership(
        client: TestClient, org: Org, drain: Callable[[], int], breaks: dict[str, exp.Expr], fault: str) -> None:
    load_people(client, org, drain, [person(i) for i in range(6)])  # odd i live in the US
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    rich = define(client, org, "rich", "loyalty.points >= 30")["id"]
    first = run_job(client, org, drain, us, rich)
    assert first["metrics"]["segmentedProfileCounter"] == {us: 3, rich: 3}
    # A binder error (a column the data lacks) shows when the plan is prepared; a runtime error (DuckDB's
    # error()) only when the condition is evaluated on a row.
    breaks[rich] = (exp.column("no_such_column") if fault == "binder"
                    else exp.func("error", exp.Literal.string("injected fault")))
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us}, {"segmentId": rich}]).json()
    drain()
    second = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert second["status"] == "SUCCEEDED"
    [error] = second["errors"]
    assert (error["code"], error["segmentId"]) == ("0090000012", rich)
    assert error["msg"].startswith(f"segment {rich} could not be evaluated and keeps its previous membership: ")
    assert ("no_such_column" if fault == "binder" else "injected fault") in error["msg"]
    # The other segment completed; the failed one is not counted, and its members stay as the first job left them.
    assert second["metrics"]["segmentedProfileCounter"] == {us: 3}
    assert second["metrics"]["segmentedProfileByStatusCounter"] == {us: {"realized": 0, "existing": 3, "exited": 0}}
    assert members(client, org, us) == {"p1": "existing", "p3": "existing", "p5": "existing"}
    assert members(client, org, rich) == {"p3": "realized", "p4": "realized", "p5": "realized"}


def test_a_job_whose_every_segment_fails_fails_naming_each(
        client: TestClient, org: Org, drain: Callable[[], int], breaks: dict[str, exp.Expr]) -> None:
    load_people(client, org, drain, [person(i) for i in range(3)])
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    rich = define(client, org, "rich", "loyalty.points >= 30")["id"]
    breaks[us] = breaks[rich] = exp.column("no_such_column")
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us}, {"segmentId": rich}]).json()
    drain()
    failed = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert failed["status"] == "FAILED"
    assert [(e["code"], e["segmentId"]) for e in failed["errors"]] == [("0090000012", us), ("0090000012", rich)]
    assert all("no_such_column" in e["msg"] for e in failed["errors"])


def test_a_cancelled_job_is_not_blamed_on_a_segment(
        client: TestClient, org: Org, drain: Callable[[], int], monkeypatch: pytest.MonkeyPatch) -> None:
    load_people(client, org, drain, [person(i) for i in range(3)])
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    job = client.post(JOBS, headers=org.headers(), json=[{"segmentId": us}]).json()
    probed: list[object] = []
    monkeypatch.setattr(evaluate, "failing_segments", lambda *args: probed.append(args) or {})
    real = evaluate._evaluate

    def cancel_then_evaluate(*args: Any) -> Any:
        assert client.delete(f"{JOBS}/{job['id']}", headers=org.headers()).status_code == 204
        return real(*args)

    monkeypatch.setattr(evaluate, "_evaluate", cancel_then_evaluate)
    drain()
    cancelled = client.get(f"{JOBS}/{job['id']}", headers=org.headers()).json()
    assert (cancelled["status"], cancelled.get("errors"), probed) == ("CANCELLED", [], [])
