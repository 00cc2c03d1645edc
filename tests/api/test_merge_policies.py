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
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_each_sandbox_has_a_default_policy(client: TestClient, org: Org) -> None:
    listed = client.get(PATH, headers=org.headers()).json()
    (policy,) = listed["children"]
    assert policy["default"] is True
    assert policy["identityGraph"] == {"type": "pdg"}
    assert policy["attributeMerge"] == {"type": "timestampOrdered"}
    assert policy["schema"] == {"name": "_xdm.context.profile"}
    assert policy["sandbox"]["sandboxName"] == "prod" and policy["imsOrgId"] == org.org_id
    assert listed["_page"] == {"count": 1, "totalCount": 1, "pageSize": 1, "next": ""}  # profile.yaml: count
    assert listed["_links"] == {"next": {"href": ""}}


def test_create_get_and_page(client: TestClient, org: Org) -> None:
    created = [_create(client, org, name=f"mp{i}") for i in range(3)]
    assert created[0]["version"] == 1 and created[0]["default"] is False
    assert client.get(f"{PATH}/{created[1]['id']}", headers=org.headers()).json() == created[1]
    page = client.get(f"{PATH}?limit=2", headers=org.headers()).json()
    assert page["_page"] == {"count": 2, "totalCount": 4, "pageSize": 2, "next": "2"}
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
    # The order shows in openseg's spelling (data.order) and AEP's (order, profile.yaml).
    assert policy["attributeMerge"] == {"type": "dataSetPrecedence", "data": {"order": [second, first]},
                                        "order": [second, first]}


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


def test_aep_spells_the_dataset_order_as_attribute_merge_order(client: TestClient, org: Org) -> None:
    first, second = create_dataset(client, org.headers(), "a"), create_dataset(client, org.headers(), "b")
    policy = _create(client, org, attributeMerge={"type": "dataSetPrecedence", "order": [second, first]})
    assert policy["attributeMerge"] == {"type": "dataSetPrecedence", "data": {"order": [second, first]},
                                        "order": [second, first]}
    both = client.post(PATH, headers=org.headers(), json={
        "name": "both", "identityGraph": {"type": "pdg"},
        "attributeMerge": {"type": "dataSetPrecedence", "order": [first], "data": {"order": [second]}}})
    assert_aep_error(both, 400, detail_contains="'attributeMerge.order' and 'attributeMerge.data.order' differ")
    # A patch of either spelling changes the order; the other follows.
    for path in ("/attributeMerge/order", "/attributeMerge/data/order"):
        patched = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                               json=[{"op": "replace", "path": path, "value": [first]}])
        assert patched.status_code == 200, patched.text
        assert patched.json()["attributeMerge"] == {"type": "dataSetPrecedence", "data": {"order": [first]},
                                                    "order": [first]}
        client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                     json=[{"op": "replace", "path": path, "value": [second, first]}])


def test_patch_takes_the_spec_example_paths(client: TestClient, org: Org) -> None:
    """profile.yaml's PATCH example: ``[{"op": "add", "path": "/identityGraph.type", "value": "pdg"}]``."""
    policy = _create(client, org)
    patched = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                           json=[{"op": "add", "path": "/identityGraph.type", "value": "pdg"}])
    assert patched.status_code == 200, patched.text
    assert (patched.json()["identityGraph"], patched.json()["version"]) == ({"type": "pdg"}, 2)
    again = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(), json=[
        {"op": "add", "path": "/name", "value": "renamed"}, {"op": "add", "path": "/idActiveOnEdge", "value": True},
        {"op": "add", "path": "/schema.name", "value": "_xdm.context.profile"}])
    assert again.status_code == 200, again.text
    assert (again.json()["name"], again.json()["isActiveOnEdge"], again.json()["version"]) == ("renamed", True, 3)
    assert client.get(f"{PATH}/{policy['id']}", headers=org.headers()).json()["identityGraph"] == {"type": "pdg"}
    unknown = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                           json=[{"op": "add", "path": "/attributeMerge.type", "value": "newest"}])
    assert_aep_error(unknown, 400, detail_contains="'attributeMerge.type' must be one of")
    other_schema = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                                json=[{"op": "add", "path": "/schema.name", "value": "_xdm.context.experienceevent"}])
    assert_aep_error(other_schema, 400, detail_contains="'schema.name' must be _xdm.context.profile")
    version = client.patch(f"{PATH}/{policy['id']}", headers=org.headers(),
                           json=[{"op": "add", "path": "/version", "value": 9}])
    assert_aep_error(version, 400, detail_contains="'/version' cannot be changed")


def test_bulk_get_answers_each_id(client: TestClient, org: Org) -> None:
    """profile.yaml: 207 with one entry per id; an id this sandbox does not have is a not-found entry."""
    policy = _create(client, org)
    client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(), json={"name": "dev"})
    elsewhere = _create(client, org, name="in dev")  # created in prod, asked for from dev below
    response = client.post(f"{PATH}/bulk-get", headers=org.headers(),
                           json={"ids": [{"id": policy["id"]}, {"id": "nope"}]})
    assert response.status_code == 207, response.text
    assert response.json() == {"results": {
        policy["id"]: client.get(f"{PATH}/{policy['id']}", headers=org.headers()).json(),
        "nope": {"errors": {"404": [{"code": 404, "message": "merge policy 'nope' was not found"}]}}}}
    from_dev = client.post(f"{PATH}/bulk-get", headers=org.headers("dev"), json={"ids": [{"id": elsewhere["id"]}]})
    assert from_dev.status_code == 207
    assert from_dev.json()["results"] == {elsewhere["id"]: {"errors": {"404": [
        {"code": 404, "message": f"merge policy '{elsewhere['id']}' was not found"}]}}}
    assert_aep_error(client.post(f"{PATH}/bulk-get", headers=org.headers(), json={"ids": "x"}), 400,
                     detail_contains="'ids' must be a list")
