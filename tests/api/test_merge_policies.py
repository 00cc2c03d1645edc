"""UPS merge policies: default per sandbox, create/list/get/PUT/PATCH/DELETE, validation."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset
from tests.conftest import Org

PATH = "/data/core/ups/config/mergePolicies"


def _create(client: TestClient, org: Org, **body: object) -> dict:
    payload = {"name": "by dataset", "identityGraph": {"type": "none"},
               "attributeMerge": {"type": "timestampOrdered"}, "schema": {"name": "_xdm.context.profile"}}
    payload.update(body)
    response = client.post(PATH, headers=org.headers(), json=payload)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_each_sandbox_has_a_default_policy(client: TestClient, org: Org) -> None:
    listed = client.get(PATH, headers=org.headers()).json()
    (policy,) = listed["children"]
    assert policy["default"] is True
    assert policy["identityGraph"] == {"type": "pdg"}
    assert policy["attributeMerge"] == {"type": "timestampOrdered"}
    assert policy["schema"] == {"name": "_xdm.context.profile"}
    assert policy["sandbox"]["sandboxName"] == "prod" and policy["imsOrgId"] == org.org_id
    assert listed["_page"] == {"totalCount": 1, "pageSize": 1, "next": ""}
    assert listed["_links"] == {"next": {"href": ""}}


def test_create_get_and_page(client: TestClient, org: Org) -> None:
    created = [_create(client, org, name=f"mp{i}") for i in range(3)]
    assert created[0]["version"] == 1 and created[0]["default"] is False
    assert client.get(f"{PATH}/{created[1]['id']}", headers=org.headers()).json() == created[1]
    page = client.get(f"{PATH}?limit=2", headers=org.headers()).json()
    assert page["_page"] == {"totalCount": 4, "pageSize": 2, "next": "2"}
    assert page["_links"]["next"]["href"] == f"{PATH}?start=2&limit=2"
    rest = client.get(page["_links"]["next"]["href"], headers=org.headers()).json()
    assert [p["name"] for p in rest["children"]] == ["mp1", "mp2"]
    assert rest["_links"]["next"]["href"] == ""


def test_dataset_precedence_needs_known_datasets(client: TestClient, org: Org) -> None:
    response = client.post(PATH, headers=org.headers(), json={
        "name": "x", "identityGraph": {"type": "pdg"}, "attributeMerge": {"type": "dataSetPrecedence"}})
    assert_aep_error(response, 400, detail_contains="'attributeMerge.data.order'")
    response = client.post(PATH, headers=org.headers(), json={
        "name": "x", "identityGraph": {"type": "pdg"},
        "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": ["nope"]}}})
    assert_aep_error(response, 400, detail_contains="do not exist: nope")
    first, second = create_dataset(client, org.headers(), "a"), create_dataset(client, org.headers(), "b")
    policy = _create(client, org, attributeMerge={"type": "dataSetPrecedence", "data": {"order": [second, first]}})
    assert policy["attributeMerge"] == {"type": "dataSetPrecedence", "data": {"order": [second, first]}}


def test_bad_types_name_the_field(client: TestClient, org: Org) -> None:
    response = client.post(PATH, headers=org.headers(), json={
        "name": "x", "identityGraph": {"type": "graph"}, "attributeMerge": {"type": "timestampOrdered"}})
    assert_aep_error(response, 400, detail_contains="'identityGraph.type' must be one of none, pdg")


def test_put_patch_bump_version_and_default_moves(client: TestClient, org: Org) -> None:
    policy = _create(client, org)
    put = client.put(f"{PATH}/{policy['id']}", headers=org.headers(), json={
        **policy, "name": "renamed", "identityGraph": {"type": "pdg"}})
    assert put.status_code == 200
    assert (put.json()["name"], put.json()["version"], put.json()["identityGraph"]) == ("renamed", 2, {"type": "pdg"})
    patched = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                           json=[{"op": "replace", "path": "/default", "value": True}])
    assert patched.status_code == 200 and patched.json()["default"] is True and patched.json()["version"] == 3
    defaults = client.get(f"{PATH}?default=true", headers=org.headers()).json()["children"]
    assert [p["id"] for p in defaults] == [policy["id"]]
    bad = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                       json=[{"op": "replace", "path": "/imsOrgId", "value": "x"}])
    assert_aep_error(bad, 400, detail_contains="'/imsOrgId' cannot be changed")


def test_delete(client: TestClient, org: Org) -> None:
    policy = _create(client, org)
    assert client.delete(f"{PATH}/{policy['id']}", headers=org.headers()).status_code == 200
    assert_aep_error(client.get(f"{PATH}/{policy['id']}", headers=org.headers()), 404,
                     detail_contains="merge policy")
    (default,) = client.get(PATH, headers=org.headers()).json()["children"]
    assert_aep_error(client.delete(f"{PATH}/{default['id']}", headers=org.headers()), 409,
                     detail_contains="default")


def test_policies_are_per_sandbox(client: TestClient, org: Org) -> None:
    policy = _create(client, org)
    client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(), json={"name": "dev"})
    assert_aep_error(client.get(f"{PATH}/{policy['id']}", headers=org.headers("dev")), 404)
    assert len(client.get(PATH, headers=org.headers("dev")).json()["children"]) == 1
