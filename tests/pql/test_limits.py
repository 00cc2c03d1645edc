"""PQL size limits: long flat chains work, deep nesting and huge durations are positioned 400s (issue 19)."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from openseg.pql import parse
from openseg.pql.errors import PqlError
from openseg.pql.limits import MAX_DEPTH, MAX_NESTING
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.conftest import Org

DEFINITIONS = "/data/core/ups/segment/definitions"
PREVIEW = "/data/core/ups/preview"


def _define(client: TestClient, org: Org, pql: str) -> object:
    return client.post(DEFINITIONS, headers=org.headers(), json={
        "name": pql[:40], "expression": {"type": "PQL", "format": "pql/text", "value": pql}})


@pytest.mark.parametrize("word", ["and", "or"])
def test_a_chain_of_500_conditions_is_defined_and_previewed(client: TestClient, org: Org, drain, word: str) -> None:  # type: ignore[no-untyped-def]
    dataset = create_dataset(client, org.headers())
    upload_batch(client, org.headers(), dataset, {"p.json": json_lines([person(i) for i in range(1, 5)])})
    drain()
    pql = f" {word} ".join(f"loyalty.points >= {i}" for i in range(500))
    assert _define(client, org, pql).status_code == 200  # type: ignore[attr-defined]
    response = client.post(PREVIEW, headers=org.headers(), json={"predicateExpression": pql})
    assert response.status_code == 201, response.text
    expected = 0 if word == "and" else 4  # points are 10..40: none reaches 499, all reach 0
    estimate = client.get(f"/data/core/ups/estimate/{response.json()['previewId']}", headers=org.headers()).json()
    assert estimate["estimatedSize"] == expected


@pytest.mark.parametrize(("pql", "col"), [
    ("(" * 80 + 'homeAddress.country = "US"' + ")" * 80, MAX_NESTING + 1),
    ("xEvent[" * 50 + 'eventType = "x"' + "].count() > 0" * 50, 7 * MAX_NESTING + 1),
    ("not " * 80 + "true", 4 * MAX_NESTING + 1),
    ("-" * 80 + "loyalty.points > 0", MAX_NESTING + 1),
])
def test_nesting_beyond_the_limit_is_a_positioned_400(client: TestClient, org: Org, pql: str, col: int) -> None:
    for path, body, field in ((DEFINITIONS, {"name": "deep", "expression": {"type": "PQL", "value": pql}},
                               "expression.value"),
                              (PREVIEW, {"predicateExpression": pql}, "predicateExpression.value")):
        response = client.post(path, headers=org.headers(), json=body)
        found = assert_aep_error(response, 400, detail_contains=f"nested too deeply: at most {MAX_NESTING}")
        assert found["report"]["field"] == field
        assert found["report"]["line"] == 1 and found["report"]["col"] == col


def test_a_tree_deeper_than_the_limit_is_refused_where_it_crosses_it() -> None:
    pql = "loyalty.points" + " + 1" * 500 + " > 0"
    with pytest.raises(PqlError, match=f"nested too deeply: at most {MAX_DEPTH} levels") as caught:
        parse(pql)
    assert caught.value.line == 1 and caught.value.col > 1


def test_the_limits_leave_room_for_real_segments() -> None:
    parse("(" * (MAX_NESTING - 1) + "true" + ")" * (MAX_NESTING - 1))
    parse("loyalty.points" + " + 1" * (MAX_DEPTH - 3) + " > 0")


@pytest.mark.parametrize(("pql", "problem"), [
    ('homeAddress.country.matches("(")', 'the regex of matches() "(" is not a regular expression'),
    ('homeAddress.country.matches("a(?=b)")', "'(?=' (lookaround"),
    ('personalEmail.address.regexGroup("[", 1) = "x"', "the regex of regexGroup()"),
])
def test_an_invalid_regex_is_a_400_at_check_time_naming_the_pattern(client: TestClient, org: Org, pql: str,
                                                                   problem: str) -> None:
    found = assert_aep_error(_define(client, org, pql), 400, detail_contains=problem)  # type: ignore[arg-type]
    assert found["report"]["field"] == "expression.value"
    assert found["report"]["col"] == pql.index('("') + 2


@pytest.mark.parametrize("pql", [
    "xEvent[timestamp occurs <= 99999999999999999999 days before now].count() > 0",
    "xEvent[timestamp occurs <= 999999999 years before now].count() > 0",
    "person.birthDate occurs > 10001 years before now",
    "loyalty.joinDate + 99999999999 days > now",
])
def test_a_duration_beyond_10000_years_is_a_400(client: TestClient, org: Org, pql: str) -> None:
    found = assert_aep_error(_define(client, org, pql), 400, detail_contains="(10,000 years)")  # type: ignore[arg-type]
    assert found["report"]["field"] == "expression.value"


def test_a_window_just_within_the_limit_runs(client: TestClient, org: Org) -> None:
    pql = "xEvent[timestamp occurs <= 3652500 days before now].count() > 0"
    assert _define(client, org, pql).status_code == 200  # type: ignore[attr-defined]
    response = client.post(PREVIEW, headers=org.headers(), json={"predicateExpression": pql})
    assert response.status_code == 201, response.text


def test_a_nested_event_list_the_engine_cannot_run_is_a_400_in_preview(client: TestClient, org: Org) -> None:
    pql = 'xEvent[xEvent[eventType = "a"].count() > 0].count() > 0'
    response = client.post(PREVIEW, headers=org.headers(), json={"predicateExpression": pql})
    found = assert_aep_error(response, 400, detail_contains="cannot run on the duckdb engine")
    assert found["report"]["field"] == "predicateExpression"
