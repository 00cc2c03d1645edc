"""pql/json on segment definitions and ``POST /data/core/ups/segment/conversion`` (pql/text <-> pql/json)."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error, assert_gateway_error
from tests.conftest import Org

CONVERSION = "/data/core/ups/segment/conversion"
DEFINITIONS = "/data/core/ups/segment/definitions"
PROFILE = {"nodeType": "parameterReference", "position": 1}


def lookup(*names: str) -> dict[str, object]:
    tree: dict[str, object] = PROFILE
    for name in names:
        tree = {"nodeType": "fieldLookup", "fieldName": name, "object": tree}
    return tree


US_TREE = json.dumps({"nodeType": "fnApply", "fnName": "=", "params": [
    lookup("workAddress", "country"), {"nodeType": "literal", "literalType": "String", "value": "US"}]},
    separators=(",", ":"))
# The request of AEP's "convert a segment definition" call (segment-definitions API page), with its extra fields.
AEP_BODY = {"name": "People who ordered in the last 30 days", "profileInstanceId": "ups",
            "description": "Last 30 days", "schema": {"name": "_xdm.context.profile"}, "payloadSchema": "string",
            "ttlInDays": 60}


def expression(fmt: str, value: str) -> dict[str, str]:
    return {"type": "PQL", "format": fmt, "value": value}


def test_text_converts_to_aeps_json_tree_and_back(client: TestClient, org: Org) -> None:
    body = {**AEP_BODY, "expression": expression("pql/text", 'workAddress.country = "US"')}
    response = client.post(CONVERSION, headers=org.headers(), json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {**AEP_BODY, "expression": expression("pql/json", US_TREE)}
    back = client.post(CONVERSION, headers=org.headers(), json=response.json())
    assert back.status_code == 200, back.text
    assert back.json() == body


def test_json_converts_to_canonical_text(client: TestClient, org: Org) -> None:
    tree = ('{"nodeType":"fnApply","fnName":"=","params":[{"nodeType":"fieldLookup","fieldName":"a","object":'
            '{"nodeType":"parameterReference","position":1}},{"nodeType":"fieldLookup","fieldName":"b","object":'
            '{"nodeType":"parameterReference","position":1}}]}')
    response = client.post(CONVERSION, headers=org.headers(), json={"expression": expression("pql/json", tree)})
    assert response.status_code == 200, response.text
    assert response.json() == {"expression": expression("pql/text", "a = b")}
    # AEP's job responses show pql/json expressions whose value is PQL text; they convert too.
    seed = client.post(CONVERSION, headers=org.headers(),
                       json={"expression": expression("pql/json", 'homeAddress.country  =  "US"')})
    assert seed.json() == {"expression": expression("pql/text", 'homeAddress.country = "US"')}


def test_value_expressions_convert_both_ways_but_are_not_segments(client: TestClient, org: Org) -> None:
    # AEP's pages document expressions, not only conditions: conversion takes any PQL; a segment stays a condition.
    price = {"nodeType": "fnApply", "fnName": "+", "params": [lookup("product1", "price"), lookup("product2", "price")]}
    cases = [("orders.count()", {"nodeType": "fnApply", "fnName": "count", "params": [lookup("orders")]}),
             ("product1.price + product2.price", price),
             ("identityMap.keys()", {"nodeType": "fnApply", "fnName": "keys", "params": [lookup("identityMap")]})]
    for text, tree in cases:
        response = client.post(CONVERSION, headers=org.headers(), json={"expression": expression("pql/text", text)})
        assert response.status_code == 200, response.text
        assert json.loads(response.json()["expression"]["value"]) == tree
        back = client.post(CONVERSION, headers=org.headers(), json=response.json())
        assert back.json() == {"expression": expression("pql/text", text)}
    created = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "a value", "schema": {"name": "_xdm.context.profile"},
        "expression": expression("pql/text", "person.birthYear + 1")})
    assert_aep_error(created, 400)
    assert "a segment is a condition (true or false), but this is a number" in created.json()["detail"]


def test_event_conditions_have_no_json_form(client: TestClient, org: Org) -> None:
    response = client.post(CONVERSION, headers=org.headers(), json={"expression": expression(
        "pql/text", 'homeAddress.country = "US" and xEvent[eventType = "commerce.purchases"].count() > 0')})
    body = assert_aep_error(response, 400)
    assert body["detail"] == (
        "expression.value: line 1, column 32: pql/json cannot express xEvent[...] (a condition on each event): "
        "AEP's pql/json nodes (fnApply, fieldLookup, parameterReference, literal) cannot bind an event or an array "
        "item; send this expression as pql/text")
    assert body["report"]["field"] == "expression.value" and body["report"]["col"] == 32


def test_a_bad_node_is_named_by_its_json_pointer(client: TestClient, org: Org) -> None:
    tree = {"nodeType": "fnApply", "fnName": "=", "params": [
        lookup("homeAddress", "country"), {"nodeType": "literal", "literalType": "Text", "value": "US"}]}
    response = client.post(CONVERSION, headers=org.headers(),
                           json={"expression": expression("pql/json", json.dumps(tree))})
    body = assert_aep_error(response, 400)
    assert body["detail"] == ('expression.value: at JSON pointer "/params/1/literalType": unknown literalType '
                              '(found "Text"); expected String, Integer, Double, Boolean, Null, List')
    assert body["report"] == {"field": "expression.value", "message": "unknown literalType",
                              "pointer": "/params/1/literalType", "found": '"Text"',
                              "expected": ["String", "Integer", "Double", "Boolean", "Null", "List"]}
    missing = client.post(CONVERSION, headers=org.headers(), json={"name": "x"})
    assert assert_aep_error(missing, 400)["detail"] == "'expression' is required"


def test_conversion_needs_credentials(client: TestClient) -> None:
    response = client.post(CONVERSION, json={"expression": expression("pql/text", "a = b")})
    assert_gateway_error(response, 401, "401013")


def test_definitions_in_pql_json_are_created_listed_and_evaluated_as_their_text(client: TestClient, org: Org) -> None:
    as_json = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "US workers", "expression": expression("pql/json", US_TREE)})
    assert as_json.status_code == 200, as_json.text
    created = as_json.json()
    assert created["expression"] == expression("pql/json", US_TREE)
    as_text = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "gold", "expression": expression("pql/text", 'loyalty.tier = "gold"')}).json()
    assert client.get(f"{DEFINITIONS}/{created['id']}", headers=org.headers()).json() == created
    listed = client.get(DEFINITIONS, headers=org.headers()).json()["segments"]
    assert [s["expression"] for s in listed] == [expression("pql/json", US_TREE),
                                                 expression("pql/text", 'loyalty.tier = "gold"')]
    both = json.dumps({"nodeType": "fnApply", "fnName": "and", "params": [
        {"nodeType": "fnApply", "fnName": "inSegment", "params": [
            {"nodeType": "literal", "literalType": "String", "value": as_text["id"]}]},
        json.loads(US_TREE)]})
    derived = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "gold US workers", "expression": expression("pql/json", both)}).json()
    assert derived["dependencies"] == [as_text["id"]]
    patched = client.patch(f"{DEFINITIONS}/{as_text['id']}", headers=org.headers(), json={
        "expression": expression("pql/json", US_TREE)})
    assert patched.status_code == 200 and patched.json()["expression"] == expression("pql/json", US_TREE)


def test_a_json_definition_with_an_unknown_field_names_it_in_its_text_form(client: TestClient, org: Org) -> None:
    tree = json.dumps({"nodeType": "fnApply", "fnName": "=", "params": [
        lookup("homeAddress", "cuntry"), {"nodeType": "literal", "literalType": "String", "value": "US"}]})
    response = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "bad", "expression": expression("pql/json", tree)})
    body = assert_aep_error(response, 400)
    assert body["detail"].startswith(
        'expression.value: line 1, column 1 of its pql/text form homeAddress.cuntry = "US": unknown field '
        "homeAddress.cuntry")
    assert body["report"]["pqlText"] == 'homeAddress.cuntry = "US"'
