"""openseg's explain extension: why one profile is or is not in a segment (contract.md, "Explain")."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from openseg.cli import app as cli
from openseg.config import Settings
from tests.api.aep import assert_aep_error
from tests.api.flows import event, person
from tests.api.test_definitions import PATH, define
from tests.api.test_segment_jobs import load_people, run_job
from tests.conftest import Org

#: Profile i lives in the US when i is odd, has i * 10 loyalty points and lives in City{i % 7}.
PEOPLE = [person(i) for i in range(6)]
#: Events e{i} of profile p: commerce.purchases when i is a multiple of 3, page views otherwise.
EVENTS = [event(i, p) for i, p in [(0, 3), (1, 3), (3, 3), (6, 5), (4, 1)]]
BUYERS = 'xEvent[eventType = "commerce.purchases"].count() >= 2'


def _explain(client: TestClient, org: Org, segment_id: str, email: str) -> dict[str, Any]:
    response = client.get(f"{PATH}/{segment_id}/explain", headers=org.headers(),
                          params={"entityId": email, "entityIdNS": "email"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def _without_times(body: dict[str, Any]) -> dict[str, Any]:
    """The body without the times that change from run to run (checked separately)."""
    membership = body["membership"] and {k: v for k, v in body["membership"].items() if k != "lastQualificationTime"}
    return {**{k: v for k, v in body.items() if k != "asOf"}, "membership": membership}


def _segments(client: TestClient, org: Org, drain: Callable[[], int]) -> tuple[str, str]:
    load_people(client, org, drain, PEOPLE, EVENTS)
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    loyal = define(client, org, "loyal US", f'inSegment("{us}") and (loyalty.points >= 50 or {BUYERS}) '
                                            'and not homeAddress.city = "City3"')["id"]
    run_job(client, org, drain, us, loyal)
    return us, loyal


def test_explanation_marks_exactly_the_false_conditions(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, loyal = _segments(client, org, drain)
    body = _explain(client, org, loyal, "p3@example.com")
    link = f"{PATH}/{us}/explain?entityId=p3%40example.com&entityIdNS=email"
    assert _without_times(body) == {
        "segmentId": loyal,
        "profileId": "email:p3@example.com",
        "qualifies": False,
        "membership": None,
        "agreesWithMembership": True,
        "reason": None,
        "explanation": {
            "pql": f'inSegment("{us}") and (loyalty.points >= 50 or {BUYERS}) and not homeAddress.city = "City3"',
            "description": f'is in segment "{us}" and (loyalty points is at least 50 or the number of events where '
                           'event type is "commerce.purchases" is at least 2) and not (home address city is "City3")',
            "value": False,
            "children": [
                {"pql": f'inSegment("{us}")', "description": f'is in segment "{us}"', "value": True,
                 "segmentId": us, "_links": {"explanation": {"href": link}}, "children": []},
                {"pql": f"loyalty.points >= 50 or {BUYERS}",
                 "description": 'loyalty points is at least 50 or the number of events where event type is '
                                '"commerce.purchases" is at least 2',
                 "value": True,
                 "children": [
                     {"pql": "loyalty.points >= 50", "description": "loyalty points is at least 50", "value": False,
                      "found": 30, "children": []},
                     {"pql": BUYERS,
                      "description": 'the number of events where event type is "commerce.purchases" is at least 2',
                      "value": True, "found": 2, "events": {"matched": 2, "sample": ["e3", "e0"]}, "children": []},
                 ]},
                {"pql": 'not homeAddress.city = "City3"', "description": 'not (home address city is "City3")',
                 "value": False,
                 "children": [{"pql": 'homeAddress.city = "City3"', "description": 'home address city is "City3"',
                               "value": True, "found": "City3", "children": []}]},
            ],
        },
    }
    assert body["asOf"].endswith("Z")
    # The inSegment node links to the referenced segment's own explanation for the same profile.
    referenced = client.get(link, headers=org.headers())
    assert referenced.status_code == 200
    assert referenced.json()["qualifies"] is True and referenced.json()["membership"]["status"] == "realized"


def test_root_is_the_membership_of_the_last_job(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, loyal = _segments(client, org, drain)
    for i in range(6):
        email = f"p{i}@example.com"
        for segment_id in (us, loyal):
            body = _explain(client, org, segment_id, email)
            member = body["membership"] is not None and body["membership"]["status"] in ("realized", "existing")
            assert body["qualifies"] is member and body["agreesWithMembership"] and body["reason"] is None
        # Of the US residents p1, p3 and p5, only p5 has 50 points (or two purchases) and lives outside City3.
        assert _explain(client, org, loyal, email)["qualifies"] is (i == 5)
    five = _explain(client, org, loyal, "p5@example.com")
    assert five["membership"]["status"] == "realized" and five["membership"]["lastQualificationTime"].endswith("Z")


def test_a_change_of_data_since_the_last_job_is_named(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset_id = load_people(client, org, drain, PEOPLE)
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    run_job(client, org, drain, us)
    moved = person(5)
    moved["homeAddress"] = {"country": "FR"}
    load_people(client, org, drain, [moved], dataset_id=dataset_id)  # p5 moves to France; no job runs
    body = _explain(client, org, us, "p5@example.com")
    assert body["qualifies"] is False and body["membership"]["status"] == "realized"
    assert body["agreesWithMembership"] is False
    assert body["reason"].startswith("the profile data changed since the last job evaluated the segment at ")
    assert body["explanation"]["found"] == "FR"


def test_a_changed_definition_and_a_referenced_segment_evaluated_since_are_named(
        client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    us, loyal = _segments(client, org, drain)
    france = {"expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'}}
    assert client.patch(f"{PATH}/{us}", headers=org.headers(), json=france).status_code == 200
    changed = _explain(client, org, us, "p5@example.com")
    assert changed["qualifies"] is False and changed["membership"]["status"] == "realized"
    assert changed["reason"].startswith("the definition changed at ")
    assert changed["reason"].split(", ")[1].startswith("after the last job evaluated it at ")
    # "loyal US" reads the membership of "US", which p5 still has: its explanation agrees.
    assert _explain(client, org, loyal, "p5@example.com")["agreesWithMembership"] is True
    run_job(client, org, drain, us)  # p5 leaves "US"; "loyal US" is not evaluated again
    body = _explain(client, org, loyal, "p5@example.com")
    assert body["qualifies"] is False and body["membership"]["status"] == "realized"
    assert body["explanation"]["children"][0]["value"] is False
    assert body["reason"].startswith("segments it reads with inSegment were evaluated again after ")
    assert body["reason"].endswith(f": {us}")


def test_a_segment_no_job_has_evaluated(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, PEOPLE)
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    body = _explain(client, org, us, "p1@example.com")
    assert body["qualifies"] is True and body["membership"] is None
    assert body["agreesWithMembership"] is False and body["reason"] == "no segment job has evaluated this segment yet"


def test_unknown_profile_segment_and_missing_parameters(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, PEOPLE)
    us = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    unknown = client.get(f"{PATH}/{us}/explain", headers=org.headers(),
                         params={"entityId": "nobody@example.com", "entityIdNS": "email"})
    assert assert_aep_error(unknown, 404, detail_contains="no profile has identity email:nobody@example.com")[
        "report"] == {"entityId": "nobody@example.com", "entityIdNS": "email"}
    assert_aep_error(client.get(f"{PATH}/nope/explain", headers=org.headers(),
                                params={"entityId": "p1@example.com", "entityIdNS": "email"}),
                     404, detail_contains="segment definition 'nope'")
    missing = assert_aep_error(client.get(f"{PATH}/{us}/explain", headers=org.headers(),
                                          params={"entityIdNS": "email"}), 400, detail_contains="entityId")
    assert missing["report"]["errors"][0]["field"] == "entityId"


def test_no_profile_store_yet_is_409(client: TestClient, org: Org) -> None:
    us = define(client, org, "US", 'homeAddress.country = "US"')
    response = client.get(f"{PATH}/{us['id']}/explain", headers=org.headers(),
                          params={"entityId": "p1@example.com", "entityIdNS": "email"})
    body = assert_aep_error(response, 409, detail_contains="has no profile store yet")
    # As every read without a build: the 409 names the policy and says a build is queued (not built here).
    assert body["report"] == {"mergePolicyId": us["mergePolicyId"], "profileBuild": "queued"}


def test_cli_explain_prints_the_tree(client: TestClient, org: Org, drain: Callable[[], int], settings: Settings) -> None:
    us, loyal = _segments(client, org, drain)
    env = {"OPENSEG_DATABASE_URL": settings.database_url}
    args = ["explain", loyal, "--entity", "p3@example.com", "--ns", "email", "--org", org.org_id,
            "--home", str(settings.home)]
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"segment {loyal}, profile email:p3@example.com, at ")
    assert lines[1] == "qualifies: no; last job: not a member (agrees)"
    assert lines[2:] == [
        f'✗ inSegment("{us}") and (loyalty.points >= 50 or {BUYERS}) and not homeAddress.city = "City3"  — '
        f'is in segment "{us}" and (loyalty points is at least 50 or the number of events where event type is '
        '"commerce.purchases" is at least 2) and not (home address city is "City3")',
        f'  ✓ inSegment("{us}")  — is in segment "{us}" [see openseg explain {us} --entity p3@example.com --ns email]',
        f"  ✓ loyalty.points >= 50 or {BUYERS}  — loyalty points is at least 50 or the number of events where event "
        'type is "commerce.purchases" is at least 2',
        "    ✗ loyalty.points >= 50  — loyalty points is at least 50 [found 30]",
        f'    ✓ {BUYERS}  — the number of events where event type is "commerce.purchases" is at least 2 '
        "[found 2; 2 matching event(s): e3, e0]",
        '  ✗ not homeAddress.city = "City3"  — not (home address city is "City3")',
        '    ✓ homeAddress.city = "City3"  — home address city is "City3" [found "City3"]',
    ]
    as_json = CliRunner().invoke(cli, [*args, "--json"], env=env)
    assert as_json.exit_code == 0, as_json.output
    assert _without_times(json.loads(as_json.output)) == _without_times(_explain(client, org, loyal, "p3@example.com"))
    missing = CliRunner().invoke(cli, [*args[:3], "nobody@example.com", *args[4:]], env=env)
    assert missing.exit_code == 2 and "no profile has identity email:nobody@example.com" in missing.output
