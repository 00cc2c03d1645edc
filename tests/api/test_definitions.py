"""UPS segment definitions: PQL checked with positions, versions, dependencies, paging."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.conftest import Org

PATH = "/data/core/ups/segment/definitions"


def define(client: TestClient, org: Org, name: str, pql: str, **extra: object) -> dict:
    body = {"name": name, "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": pql}, **extra}
    response = client.post(PATH, headers=org.headers(), json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_create_and_get(client: TestClient, org: Org) -> None:
    created = define(client, org, "US people", 'homeAddress.country = "US"', description="people in the US")
    assert created["name"] == "US people" and created["version"] == 1
    assert created["expression"] == {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}
    assert created["schema"] == {"name": "_xdm.context.profile"}
    assert created["evaluationInfo"]["batch"] == {"enabled": True}
    assert created["evaluationInfo"]["continuous"]["enabled"] is True
    assert created["ttlInDays"] == 30 and created["sandbox"]["sandboxName"] == "prod"
    policies = client.get("/data/core/ups/config/mergePolicies", headers=org.headers()).json()["children"]
    assert created["mergePolicyId"] == policies[0]["id"]
    assert client.get(f"{PATH}/{created['id']}", headers=org.headers()).json() == created


def test_invalid_expression_names_the_position(client: TestClient, org: Org) -> None:
    response = client.post(PATH, headers=org.headers(), json={
        "name": "bad", "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US" and'}})
    body = assert_aep_error(response, 400, detail_contains="line 1, column 31")
    assert "expected an expression" in body["detail"]
    assert body["report"]["col"] == 31 and body["report"]["field"] == "expression.value"


def test_type_errors_are_named(client: TestClient, org: Org) -> None:
    response = client.post(PATH, headers=org.headers(), json={
        "name": "bad", "expression": {"type": "PQL", "format": "pql/text", "value": "homeAddress.cuntry = \"US\""}})
    assert_aep_error(response, 400, detail_contains="homeAddress.cuntry")


def test_event_window_is_not_streamable_with_reason(client: TestClient, org: Org) -> None:
    created = define(client, org, "buyers",
                     'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 3')
    continuous = created["evaluationInfo"]["continuous"]
    assert continuous["enabled"] is False and continuous["reason"]


def test_versions_dependencies_and_delete(client: TestClient, org: Org) -> None:
    base = define(client, org, "US", 'homeAddress.country = "US"')
    derived = define(client, org, "US gold", f'inSegment("{base["id"]}") and loyalty.tier = "gold"')
    assert derived["dependencies"] == [base["id"]]
    assert client.get(f"{PATH}/{base['id']}", headers=org.headers()).json()["dependents"] == [derived["id"]]
    blocked = client.delete(f"{PATH}/{base['id']}", headers=org.headers())
    assert_aep_error(blocked, 409, detail_contains=derived["id"])
    cycle = client.patch(f"{PATH}/{base['id']}", headers=org.headers(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": f'inSegment("{derived["id"]}")'}})
    assert_aep_error(cycle, 400, detail_contains="cycle")
    patched = client.patch(f"{PATH}/{base['id']}", headers=org.headers(), json={"name": "United States"})
    assert patched.status_code == 200 and patched.json()["version"] == 2
    for deleted in (derived, base):  # AEP answers 200 with {status, message} (segmentation.yaml)
        answer = client.delete(f"{PATH}/{deleted['id']}", headers=org.headers())
        assert (answer.status_code, answer.json()) == (
            200, {"status": True, "message": f"segment definition {deleted['id']} was deleted"})
    assert_aep_error(client.get(f"{PATH}/{base['id']}", headers=org.headers()), 404)


def test_unknown_reference_and_duplicate_name(client: TestClient, org: Org) -> None:
    response = client.post(PATH, headers=org.headers(), json={
        "name": "x", "expression": {"type": "PQL", "format": "pql/text", "value": 'inSegment("nope")'}})
    assert_aep_error(response, 400, detail_contains="do not exist: nope")
    define(client, org, "dup", 'homeAddress.country = "US"')
    again = client.post(PATH, headers=org.headers(), json={
        "name": "dup", "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'}})
    assert_aep_error(again, 409, detail_contains="already exists")


def test_list_without_limit_and_paging(client: TestClient, org: Org) -> None:
    ids = [define(client, org, f"s{i}", f"loyalty.points > {i}")["id"] for i in range(3)]
    first = client.get(PATH, headers=org.headers()).json()
    assert [s["id"] for s in first["segments"]] == ids
    assert first["page"] == {"totalCount": 3, "totalPages": 1, "pageOffset": 0, "pageSize": 3}
    assert first["link"] == {"next": ""}
    page = client.get(f"{PATH}?limit=2", headers=org.headers()).json()
    assert page["link"]["next"] == f"{PATH}?start=2&limit=2"
    bulk = client.post(f"{PATH}/bulk-get", headers=org.headers(), json={"ids": [{"id": ids[1]}, {"id": "x"}]})
    assert bulk.status_code == 207, bulk.text
    assert bulk.json()["results"] == {
        ids[1]: client.get(f"{PATH}/{ids[1]}", headers=org.headers()).json(),
        "x": {"errors": {"404": [{"code": 404, "message": "segment definition 'x' was not found"}]}}}


def test_merge_policy_in_use_cannot_be_deleted(client: TestClient, org: Org) -> None:
    policy = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "none", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"}}).json()
    segment = define(client, org, "x", 'homeAddress.country = "US"', mergePolicyId=policy["id"])
    blocked = client.delete(f"/data/core/ups/config/mergePolicies/{policy['id']}", headers=org.headers())
    assert_aep_error(blocked, 409, detail_contains=segment["id"])


def test_payload_schema_is_kept_and_shown(client: TestClient, org: Org) -> None:
    """AEP's ``payloadSchema`` (a string openseg does not interpret) is echoed on create, read and PATCH."""
    created = define(client, org, "with payload", 'homeAddress.country = "US"', payloadSchema="string")
    assert created["payloadSchema"] == "string"
    assert client.get(f"{PATH}/{created['id']}", headers=org.headers()).json()["payloadSchema"] == "string"
    patched = client.patch(f"{PATH}/{created['id']}", headers=org.headers(), json={"payloadSchema": "other"})
    assert patched.status_code == 200 and patched.json()["payloadSchema"] == "other"
    assert "payloadSchema" not in define(client, org, "without", 'homeAddress.country = "FR"')
    bad = client.post(PATH, headers=org.headers(), json={
        "name": "bad payload", "payloadSchema": 5,
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}})
    assert_aep_error(bad, 400, detail_contains="'payloadSchema' must be a string")


def test_an_evaluation_type_turned_off_stays_off_when_the_expression_is_edited(client: TestClient, org: Org) -> None:
    created = define(client, org, "US people", 'homeAddress.country = "US"',
                     evaluationInfo={"continuous": {"enabled": False}})
    assert created["evaluationInfo"]["continuous"] == {"enabled": False}
    edited = client.patch(f"{PATH}/{created['id']}", headers=org.headers(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "FR"'}})
    assert edited.status_code == 200, edited.text
    assert edited.json()["evaluationInfo"]["continuous"] == {"enabled": False}  # the user's choice, kept
    assert edited.json()["evaluationInfo"]["batch"] == {"enabled": True}
    # An edit that makes a type impossible says why; turning it on again asks for it explicitly.
    windowed = client.patch(f"{PATH}/{created['id']}", headers=org.headers(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": 'xEvent[eventType = "commerce.purchases"].count() > 1'},
        "evaluationInfo": {"continuous": {"enabled": True}}}).json()
    assert windowed["evaluationInfo"]["continuous"]["enabled"] is False and windowed["evaluationInfo"]["continuous"]["reason"]
    back = client.patch(f"{PATH}/{created['id']}", headers=org.headers(), json={
        "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}}).json()
    assert back["evaluationInfo"]["continuous"] == {"enabled": True}  # computed again: nothing was turned off
