"""openseg's dry-run extension: what a changed expression would do to a segment's membership (contract.md, "Dry run")."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from openseg.clock import utcnow
from openseg.container import Services
from openseg.segmentation import membership
from openseg.store.models import ProfileStore, SegmentDefinition, SegmentJob
from tests.api.aep import assert_aep_error
from tests.api.flows import event, person
from tests.api.test_definitions import PATH, define
from tests.api.test_segment_jobs import load_people, run_job
from tests.conftest import Org


def _pql(value: str) -> dict[str, Any]:
    return {"expression": {"type": "PQL", "format": "pql/text", "value": value}}


def _dry_run(client: TestClient, org: Org, segment_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(f"{PATH}/{segment_id}/dryRun", headers=org.headers(), json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _counts(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "asOf"}


def _files(home: Path) -> dict[str, int]:
    """Every file under ``home``'s membership directory with its modification time."""
    return {str(p.relative_to(home)): p.stat().st_mtime_ns for p in (home / "membership").rglob("*") if p.is_file()}


def test_dry_run_equals_the_job_run_after_the_change_is_saved(client: TestClient, org: Org, services: Services,
                                                              drain: Callable[[], int]) -> None:
    people = [person(i) for i in range(30)]  # odd i in the US; i * 10 loyalty points
    purchases = [event(i, p) for i, p in [(0, 2), (3, 2), (6, 7), (9, 8), (12, 8)]]
    load_people(client, org, drain, people, purchases)
    segment = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    run_job(client, org, drain, segment)

    same = _dry_run(client, org, segment, {})
    assert _counts(same) == {"segmentId": segment, "current": 15, "proposed": 15, "wouldEnter": 0, "wouldExit": 0,
                             "wouldStay": 15, "samples": {"enter": [], "exit": []}}
    assert same["asOf"].endswith("Z")

    changed = 'loyalty.points >= 200 or xEvent[eventType = "commerce.purchases"].count() >= 2'
    before = _files(services.settings.home)
    with services.db.session() as session:
        jobs = session.query(SegmentJob).count()
    body = _dry_run(client, org, segment, _pql(changed))
    # Points of at least 200: p20..p29; two purchases: p2 and p8. US members: the 15 odd ones.
    entering = sorted(f"email:p{i}@example.com" for i in (2, 8, 20, 22, 24, 26, 28))
    leaving = sorted(f"email:p{i}@example.com" for i in range(1, 20, 2))
    assert _counts(body) == {
        "segmentId": segment, "current": 15, "proposed": 12, "wouldEnter": 7, "wouldExit": 10, "wouldStay": 5,
        "samples": {"enter": entering, "exit": leaving}}
    # Nothing was written: no membership file, no job, the definition unchanged.
    assert _files(services.settings.home) == before
    with services.db.session() as session:
        assert session.query(SegmentJob).count() == jobs
        definition = session.get(SegmentDefinition, segment)
        assert definition is not None and definition.version == 1 and definition.pql == 'homeAddress.country = "US"'

    patched = client.patch(f"{PATH}/{segment}", headers=org.headers(), json=_pql(changed))
    assert patched.status_code == 200, patched.text
    job = run_job(client, org, drain, segment)
    assert job["metrics"]["segmentedProfileByStatusCounter"][segment] == {
        "realized": body["wouldEnter"], "existing": body["wouldStay"], "exited": body["wouldExit"]}
    assert job["metrics"]["segmentedProfileCounter"][segment] == body["proposed"]


def test_samples_are_at_most_ten_and_per_profile_changes_count(client: TestClient, org: Org, services: Services,
                                                                drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(i) for i in range(40)])
    segment = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    run_job(client, org, drain, segment)
    # A per-profile write (streaming, edge) takes p1 out after the job: a dry run folds it in, as the next job does.
    with services.db.session() as session:
        definition = session.get(SegmentDefinition, segment)
        assert definition is not None
        record = session.get(ProfileStore, definition.merge_policy_id)
        assert record is not None
        sandbox_id, policy_id, pointer = record.sandbox_id, record.merge_policy_id, record.membership_path
    members = membership.store_for(services.settings.home, sandbox_id, policy_id)
    members.apply(members.state(pointer), {"email:p1@example.com": {segment: False}}, utcnow())

    everyone = "loyalty.points >= 0"
    body = _dry_run(client, org, segment, _pql(everyone))
    entering = sorted(f"email:p{i}@example.com" for i in [1, *range(0, 40, 2)])
    assert _counts(body) == {"segmentId": segment, "current": 19, "proposed": 40, "wouldEnter": 21, "wouldExit": 0,
                             "wouldStay": 19, "samples": {"enter": entering[:10], "exit": []}}
    client.patch(f"{PATH}/{segment}", headers=org.headers(), json=_pql(everyone))
    job = run_job(client, org, drain, segment)
    assert job["metrics"]["segmentedProfileByStatusCounter"][segment] == {"realized": 21, "existing": 19, "exited": 0}


def test_a_segment_without_membership_yet(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(i) for i in range(4)])
    segment = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    other = define(client, org, "rich", "loyalty.points >= 20")["id"]
    body = _dry_run(client, org, segment, _pql(f'inSegment("{other}") or homeAddress.country = "US"'))
    # No job has run: the referenced segment has no members yet, and everyone who qualifies would enter.
    assert _counts(body) == {"segmentId": segment, "current": 0, "proposed": 2, "wouldEnter": 2, "wouldExit": 0,
                             "wouldStay": 0, "samples": {"enter": ["email:p1@example.com", "email:p3@example.com"],
                                                         "exit": []}}


def test_refusals_are_those_of_a_patch(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1)])
    base = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    derived = define(client, org, "US gold", f'inSegment("{base}") and loyalty.tier = "gold"')["id"]
    url = f"{PATH}/{base}/dryRun"
    bad = assert_aep_error(client.post(url, headers=org.headers(), json=_pql('homeAddress.country = "US" and')), 400,
                           detail_contains="line 1, column 31")
    assert bad["report"]["field"] == "expression.value"
    assert_aep_error(client.post(url, headers=org.headers(), json=_pql("homeAddress.cuntry = 1")), 400,
                     detail_contains="homeAddress.cuntry")
    assert_aep_error(client.post(url, headers=org.headers(), json=_pql('inSegment("nope")')), 400,
                     detail_contains="do not exist: nope")
    assert_aep_error(client.post(url, headers=org.headers(), json=_pql(f'inSegment("{derived}")')), 400,
                     detail_contains="cycle")
    unknown = assert_aep_error(client.post(url, headers=org.headers(), json={"expresion": {}}), 400,
                               detail_contains="unknown field 'expresion'")
    assert unknown["report"]["field"] == "expresion"
    assert_aep_error(client.post(url, headers=org.headers(), json=[]), 400, detail_contains="JSON object")
    assert_aep_error(client.post(url, headers=org.headers(), json={"expression": "US"}), 400,
                     detail_contains="'expression' must be an object")
    assert_aep_error(client.post(f"{PATH}/nope/dryRun", headers=org.headers(), json={}), 404,
                     detail_contains="segment definition 'nope'")


def test_no_profile_store_yet_is_409(client: TestClient, org: Org) -> None:
    segment = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    response = client.post(f"{PATH}/{segment}/dryRun", headers=org.headers(), json={})
    assert_aep_error(response, 409, detail_contains="has no profile store yet")
