"""The Query Service's queries as AEP serves them (issue #15): the query object's fields, the list with
``orderby``, ``limit``, ``start`` and ``property`` filters, and ``PATCH`` cancel / soft delete."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.store.models import Query
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.conftest import Org

QUERIES = "/data/foundation/query/queries"
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def submit(client: TestClient, org: Org, sql: str = "SELECT 1 AS one", **extra: Any) -> dict[str, Any]:
    created = client.post(QUERIES, headers=org.headers(), json={"sql": sql, **extra})
    assert created.status_code == 202, created.text
    return dict(created.json())


def listed(client: TestClient, org: Org, **params: Any) -> dict[str, Any]:
    response = client.get(QUERIES, headers=org.headers(), params=params)
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(page: dict[str, Any]) -> list[str]:
    return [q["id"] for q in page["queries"]]


def test_a_query_has_the_fields_aep_shows(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset = create_dataset(client, org.headers(), "people")
    upload_batch(client, org.headers(), dataset, {"people.json": json_lines([person(i) for i in range(3)])})
    drain()
    query = submit(client, org, "SELECT count(*) AS n FROM people", name="count", dbName="prod:all")
    href = f"{QUERIES}/{query['id']}"
    assert ISO.match(query["created"]) and query["updated"] == query["created"]
    assert isinstance(query["userId"], str) and query["userId"]
    assert {k: v for k, v in query.items() if k not in ("id", "created", "updated", "userId")} == {
        "request": {"dbName": "prod:all", "sql": "SELECT count(*) AS n FROM people", "name": "count"},
        "effectiveSQL": "SELECT count(*) AS n FROM people", "isCTAS": False, "isInsertInto": False,
        "state": "SUBMITTED", "elapsedTime": 0, "rowCount": 0, "client": "API", "errors": [], "version": 1,
        "name": "count", "description": None, "sql": "SELECT count(*) AS n FROM people",
        "_links": {"self": {"href": href}, "results": {"href": f"{href}/results"},
                   "cancel": {"href": href, "method": "PATCH", "body": '{"op": "cancel"}'},
                   "soft_delete": {"href": href, "method": "PATCH", "body": '{"op": "soft_delete"}'}}}
    drain()
    done = client.get(href, headers=org.headers()).json()
    assert (done["state"], done["rowCount"], done["userId"]) == ("SUCCESS", 1, query["userId"])
    assert ISO.match(done["updated"]) and done["updated"] >= done["created"]


def test_a_failed_query_lists_its_error_as_aep_does(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    query = submit(client, org, "SELECT CAST('boom' AS INTEGER) AS n")
    drain()
    done = client.get(f"{QUERIES}/{query['id']}", headers=org.headers()).json()
    assert done["state"] == "FAILED"
    assert [(e["code"], e["errorType"]) for e in done["errors"]] == [("QS-1001", "USER_ERROR")]
    assert "boom" in done["errors"][0]["message"]


@pytest.mark.parametrize(("field", "value"), [
    ("ctasParameters", {"datasetName": "copy"}), ("insertIntoParameters", {"datasetName": "copy"}),
    ("templateId", "0094d000-9062-4e6a-8fdb-05606805f08f"), ("queryParameters", {"key": "value"}),
])
def test_what_openseg_does_not_run_is_refused_by_name(client: TestClient, org: Org, field: str, value: Any) -> None:
    response = client.post(QUERIES, headers=org.headers(), json={"sql": "SELECT 1", field: value})
    assert assert_aep_error(response, 400, detail_contains=f"'{field}'")["report"]["field"] == field


@pytest.fixture
def three(client: TestClient, org: Org, services: Services) -> list[str]:
    """Three queries created at 10:00, 11:00 and 12:00 UTC on 2026-01-01 (updated at 13:00, 12:00, 11:00)."""
    made = [submit(client, org, f"SELECT {i} AS n", name=f"q{i}")["id"] for i in range(3)]
    hour = 3_600_000
    with services.db.session() as session:
        for i, query_id in enumerate(made):
            query = session.get(Query, query_id)
            assert query is not None
            query.created, query.updated = 1_767_261_600_000 + i * hour, 1_767_261_600_000 + (3 - i) * hour
    return made


def test_the_list_orders_by_created_or_updated(client: TestClient, org: Org, three: list[str]) -> None:
    newest_first = listed(client, org)
    assert ids(newest_first) == three[::-1]
    assert newest_first["_page"] == {"orderby": "-created", "count": 3, "start": "2026-01-01T12:00:00.000Z"}
    assert (newest_first["_links"], newest_first["version"]) == ({}, 1)
    assert ids(listed(client, org, orderby="+created")) == three  # sent as %2Bcreated, as AEP asks
    assert ids(listed(client, org, orderby="created")) == three
    assert ids(listed(client, org, orderby="-updated")) == three
    assert ids(listed(client, org, orderby="+updated")) == three[::-1]


def test_the_list_pages_with_limit_start_and_the_next_link(client: TestClient, org: Org, three: list[str]) -> None:
    first = listed(client, org, limit=2)
    assert ids(first) == [three[2], three[1]]
    assert first["_page"] == {"orderby": "-created", "count": 2, "start": "2026-01-01T12:00:00.000Z",
                              "next": "2026-01-01T10:00:00.000Z"}
    href = first["_links"]["next"]["href"]
    assert href == f"{QUERIES}?orderby=-created&limit=2&start=2026-01-01T10%3A00%3A00.000Z"
    second = client.get(href, headers=org.headers()).json()
    assert ids(second) == [three[0]] and second["_links"] == {}
    assert ids(listed(client, org, start="2026-01-01T11:00:00Z")) == [three[1], three[0]]
    assert ids(listed(client, org, orderby="+created", start="2026-01-01T11:00:00Z")) == [three[1], three[2]]


def test_the_list_filters_by_property(client: TestClient, org: Org, three: list[str],
                                      drain: Callable[[], int]) -> None:
    drain()  # all three SUCCESS
    failing = submit(client, org, "SELECT CAST('no' AS INTEGER) AS n")["id"]
    drain()
    assert ids(listed(client, org, property="state==FAILED")) == [failing]
    assert ids(listed(client, org, property="state!=FAILED", orderby="+created")) == three
    assert ids(listed(client, org, property=f"id=={three[1]}")) == [three[1]]
    assert ids(listed(client, org, property="created>=2026-01-01T11:00:00Z,created<2026-01-01T12:00:00Z")) == [
        three[1]]
    assert ids(listed(client, org, property="created>2026-01-01T10:00:00Z,state==SUCCESS")) == [three[2], three[1]]
    assert ids(listed(client, org, property="sql~SELECT 2")) == [three[2]]
    assert ids(listed(client, org, property="sql~100%")) == []  # ~ is "contains": % is a character, not a wildcard
    assert set(ids(listed(client, org, property="client==API"))) == {*three, failing}
    user = client.get(f"{QUERIES}/{failing}", headers=org.headers()).json()["userId"]
    assert set(ids(listed(client, org, property=f"userId=={user}"))) == {*three, failing}
    assert ids(listed(client, org, property="userId==someone-else")) == []
    assert set(ids(listed(client, org, property=f"userId==someone-else||{user}"))) == {*three, failing}
    assert listed(client, org, property="state==FAILED")["_page"]["property"] == "state==FAILED"


@pytest.mark.parametrize(("params", "field", "naming"), [
    ({"orderby": "-name"}, "orderby", "orders by none of created, updated"),
    ({"property": "name==x"}, "property", "cannot filter on 'name'"),
    ({"property": "sql==SELECT 1"}, "property", "sql allows the operators ~, not =="),
    ({"property": "userId~abc"}, "property", "userId allows the operators ==, not ~"),
    ({"property": "state"}, "property", "'state' is not a filter"),
    ({"property": "created>yesterday"}, "property", "'yesterday' is not an ISO 8601 timestamp"),
    ({"start": "2026-01-01T10:00:00"}, "start", "has no time zone"),
    ({"start": "²"}, "start", "is not an ISO 8601 timestamp"),
    ({"start": "9" * 30}, "start", "is not an ISO 8601 timestamp"),
    ({"limit": "0"}, "limit", "at least 1"),
    ({"excludeSoftDeleted": "maybe"}, "excludeSoftDeleted", "true or false"),
])
def test_bad_list_parameters_are_a_400_naming_them(client: TestClient, org: Org, params: dict[str, str],
                                                   field: str, naming: str) -> None:
    response = client.get(QUERIES, headers=org.headers(), params=params)
    assert assert_aep_error(response, 400, detail_contains=naming)["report"]["field"] == field


def test_cancel_kills_a_query_not_run_yet(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    query = submit(client, org)
    href = f"{QUERIES}/{query['id']}"
    cancelled = client.patch(href, headers=org.headers(), json={"op": "cancel"})
    assert (cancelled.status_code, cancelled.json()) == (202, {"message": "Query cancel request received",
                                                               "statusCode": 202})
    drain()  # the worker finds it killed and leaves it so
    assert client.get(href, headers=org.headers()).json()["state"] == "KILLED"
    again = client.patch(href, headers=org.headers(), json={"op": "cancel"})
    assert_aep_error(again, 409, detail_contains="is KILLED")


def test_cancel_of_a_finished_query_is_a_409(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    query = submit(client, org)
    drain()
    response = client.patch(f"{QUERIES}/{query['id']}", headers=org.headers(), json={"op": "cancel"})
    assert_aep_error(response, 409, detail_contains="is SUCCESS")


def test_soft_delete_hides_a_query_from_the_list_only(client: TestClient, org: Org, three: list[str]) -> None:
    response = client.patch(f"{QUERIES}/{three[1]}", headers=org.headers(), json={"op": "soft_delete"})
    assert (response.status_code, response.json()) == (202, {"message": "Query soft delete request received",
                                                             "statusCode": 202})
    assert ids(listed(client, org)) == [three[2], three[0]]
    assert ids(listed(client, org, excludeSoftDeleted="false")) == three[::-1]
    assert client.get(f"{QUERIES}/{three[1]}", headers=org.headers()).status_code == 200


@pytest.mark.parametrize(("body", "field"), [({"op": "delete"}, "op"), ({}, "op"), (["cancel"], "body")])
def test_a_patch_other_than_cancel_or_soft_delete_is_a_400(client: TestClient, org: Org, body: Any,
                                                           field: str) -> None:
    query = submit(client, org)
    response = client.patch(f"{QUERIES}/{query['id']}", headers=org.headers(), json=body)
    assert assert_aep_error(response, 400)["report"]["field"] == field


def test_patch_of_an_unknown_query_is_a_404(client: TestClient, org: Org) -> None:
    response = client.patch(f"{QUERIES}/00000000-0000-0000-0000-000000000000", headers=org.headers(),
                            json={"op": "cancel"})
    assert_aep_error(response, 404)
