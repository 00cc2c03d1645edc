"""evaluationInfo on definitions follows the merge policy's isActiveOnEdge and the referenced segments."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Org

DEFINITIONS = "/data/core/ups/segment/definitions"
POLICIES = "/data/core/ups/config/mergePolicies"
TODAY_CHECKOUT = 'CHAIN(xEvent, timestamp, [C0: WHAT(eventType = "commerce.checkouts") WHEN(<= 24 hours before now)])'
EDGE_POLICY_REASON = ("AEP evaluates on the edge only with a merge policy that is active on edge "
                      "(isActiveOnEdge: true)")


def policy(client: TestClient, org: Org, name: str, **extra: object) -> dict:
    response = client.post(POLICIES, headers=org.headers(), json={
        "name": name, "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "timestampOrdered"}, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def define(client: TestClient, org: Org, name: str, pql: str, **extra: object) -> dict:
    response = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}, **extra})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_merge_policies_carry_is_active_on_edge_defaulting_to_false(client: TestClient, org: Org) -> None:
    plain = policy(client, org, "plain")
    edge = policy(client, org, "edge", isActiveOnEdge=True)
    assert plain["isActiveOnEdge"] is False and edge["isActiveOnEdge"] is True
    assert client.get(f"{POLICIES}/{edge['id']}", headers=org.headers()).json()["isActiveOnEdge"] is True
    patched = client.patch(f"{POLICIES}/{plain['id']}", headers=org.headers(),
                           json=[{"op": "replace", "path": "/isActiveOnEdge", "value": True}])
    assert patched.status_code == 200 and patched.json()["isActiveOnEdge"] is True


def test_edge_needs_a_policy_active_on_edge_and_is_recomputed_when_the_policy_changes(
        client: TestClient, org: Org) -> None:
    # edge-segmentation.md@6ffcd3c: "The definition must be tied to a merge policy that is active on edge".
    created = define(client, org, "US", 'homeAddress.country = "US"')
    assert created["evaluationInfo"] == {"batch": {"enabled": True}, "continuous": {"enabled": True},
                                         "synchronous": {"enabled": False, "reason": EDGE_POLICY_REASON}}
    edge = policy(client, org, "edge", isActiveOnEdge=True)
    moved = client.patch(f"{DEFINITIONS}/{created['id']}", headers=org.headers(), json={"mergePolicyId": edge["id"]})
    assert moved.status_code == 200, moved.text
    assert moved.json()["evaluationInfo"]["synchronous"] == {"enabled": True}
    on_edge = define(client, org, "US on edge", 'homeAddress.country = "US"', mergePolicyId=edge["id"])
    assert on_edge["evaluationInfo"]["synchronous"] == {"enabled": True}


def test_in_segment_beside_an_event_depends_on_the_referenced_definition(client: TestClient, org: Org) -> None:
    # streaming-segmentation.md@027b04f: inSegment("<profile-based batch audience>") and CHAIN(... WHEN(<= 24
    # hours before now)]) "will be evaluated using streaming segmentation".
    edge = policy(client, org, "edge", isActiveOnEdge=True)
    profile_based = define(client, org, "US", 'homeAddress.country = "US"')
    event_based = define(client, org, "buyers", 'xEvent[eventType = "commerce.purchases"]')
    streamed = define(client, org, "US checkouts", f'inSegment("{profile_based["id"]}") and {TODAY_CHECKOUT}',
                      mergePolicyId=edge["id"])
    assert streamed["evaluationInfo"] == {"batch": {"enabled": True}, "continuous": {"enabled": True},
                                          "synchronous": {"enabled": True}}
    batch = define(client, org, "buyer checkouts", f'inSegment("{event_based["id"]}") and {TODAY_CHECKOUT}',
                   mergePolicyId=edge["id"])
    reason = "only when the referenced definition is profile only; ups:" + event_based["id"] + " is not"
    assert batch["evaluationInfo"] == {
        "batch": {"enabled": True},
        "continuous": {"enabled": False, "reason": "AEP streams inSegment beside an event " + reason},
        "synchronous": {"enabled": False, "reason": "AEP evaluates on the edge inSegment beside an event " + reason}}
    assert event_based["evaluationInfo"]["continuous"] == {
        "enabled": False, "reason": "AEP needs the event condition to be within 24 hours (e.g. timestamp occurs today)"}
