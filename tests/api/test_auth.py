"""Auth and tenancy on every route: 401 without credentials, 403 across orgs, sandboxes isolate."""

from __future__ import annotations

import re

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import delete

from openseg.container import Services
from openseg.store import tenancy
from openseg.store.db import Database
from openseg.store.models import Credential
from tests.api.aep import assert_aep_error, assert_gateway_error
from tests.conftest import Org, make_org


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /data, with sample path parameters."""
    routes = []
    for path, operations in app.openapi()["paths"].items():
        if not path.startswith("/data/"):
            continue
        sample = re.sub(r"\{[^}]+\}", "x1", path)
        routes.extend((method.upper(), sample) for method in operations)
    return routes


def test_health_needs_no_credentials(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_every_route_requires_credentials(app: FastAPI, client: TestClient, org: Org) -> None:
    routes = _routes(app)
    assert len(routes) >= 15
    for method, path in routes:
        response = client.request(method, path)
        if method == "HEAD":  # an answer to HEAD carries no body: its status is what there is to check
            assert response.status_code == 401, path
        else:
            assert_gateway_error(response, 401, "401013")


def test_wrong_token_or_key_is_401(client: TestClient, org: Org) -> None:
    bad_token = {**org.headers(), "Authorization": "Bearer nope"}
    assert_gateway_error(client.get("/data/foundation/catalog/dataSets", headers=bad_token), 401, "401013")
    bad_key = {**org.headers(), "x-api-key": "nope"}
    assert_gateway_error(client.get("/data/foundation/catalog/dataSets", headers=bad_key), 401, "401001")
    no_key = {k: v for k, v in org.headers().items() if k != "x-api-key"}
    assert_gateway_error(client.get("/data/foundation/catalog/dataSets", headers=no_key), 401, "401001")


def test_key_of_another_org_is_403_on_every_route(app: FastAPI, client: TestClient, services: Services, org: Org) -> None:
    other = make_org(services)
    headers = {**org.headers(), "x-gw-ims-org-id": other.org_id}
    for method, path in _routes(app):
        response = client.request(method, path, headers=headers)
        if method == "HEAD":  # no body on a HEAD answer
            assert response.status_code == 403, path
        else:
            assert_gateway_error(response, 403, "403010")


def test_unknown_sandbox_is_404(client: TestClient, org: Org) -> None:
    response = client.get("/data/foundation/catalog/dataSets", headers=org.headers("nosuch"))
    assert_aep_error(response, 404, detail_contains="sandbox 'nosuch' does not exist")


def test_missing_sandbox_header_means_prod(client: TestClient, org: Org) -> None:
    created = client.post("/data/foundation/catalog/dataSets", headers=org.headers(None),
                          json={"name": "p", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile"}})
    assert created.status_code == 201
    dataset_id = created.json()[0].split("/")[-1]
    assert client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=org.headers("prod")).status_code == 200


def test_dev_cannot_see_prod_resources(client: TestClient, org: Org) -> None:
    created = client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                          json={"name": "dev", "title": "Development", "type": "development"})
    assert created.status_code == 201
    assert created.json()["name"] == "dev"
    response = client.post("/data/foundation/catalog/dataSets", headers=org.headers("prod"),
                           json={"name": "people", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile"}})
    dataset_id = response.json()[0].split("/")[-1]
    assert_aep_error(client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=org.headers("dev")), 404,
                     detail_contains=dataset_id)
    assert client.get("/data/foundation/catalog/dataSets", headers=org.headers("dev")).json() == {}
    batch = client.post("/data/foundation/import/batches", headers=org.headers("dev"),
                        json={"datasetId": dataset_id, "inputFormat": {"format": "json"}})
    assert_aep_error(batch, 400, detail_contains="does not exist in this sandbox")


def test_other_org_cannot_see_resources(client: TestClient, services: Services, org: Org) -> None:
    response = client.post("/data/foundation/catalog/dataSets", headers=org.headers(),
                           json={"name": "people", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile"}})
    dataset_id = response.json()[0].split("/")[-1]
    other = make_org(services)
    assert_aep_error(client.get(f"/data/foundation/catalog/dataSets/{dataset_id}", headers=other.headers()), 404)


def test_credentials_and_sandboxes_are_read_again_once_changed_elsewhere(client: TestClient, services: Services,
                                                                           org: Org) -> None:
    """The API keeps what it read of credentials and sandboxes only while no commit changed such metadata: a
    credential deleted or a sandbox created by another process (its own connection) counts at the next call."""
    datasets = "/data/foundation/catalog/dataSets"
    assert client.get(datasets, headers=org.headers()).status_code == 200
    assert_aep_error(client.get(datasets, headers=org.headers("dev")), 404, detail_contains="sandbox 'dev'")
    other = Database(services.db.url)
    try:
        with other.session() as session:
            tenancy.issue_credentials(session, org.org_id, "dev")  # makes the sandbox
        assert client.get(datasets, headers=org.headers("dev")).status_code == 200
        with other.session() as session:
            session.execute(delete(Credential).where(Credential.token_hash == tenancy.hash_secret(org.token)))
    finally:
        other.dispose()
    assert_gateway_error(client.get(datasets, headers=org.headers()), 401, "401013")


def test_sandboxes_list_and_duplicate(client: TestClient, org: Org) -> None:
    listed = client.get("/data/foundation/sandbox-management/sandboxes/", headers=org.headers(None)).json()
    assert [(s["name"], s["type"], s["isDefault"]) for s in listed["sandboxes"]] == [("prod", "production", True)]
    body = {"name": "dev", "title": "Dev", "type": "development"}
    assert client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(), json=body).status_code == 201
    assert_aep_error(client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(), json=body),
                     409, detail_contains="already exists")
    assert_aep_error(client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                                 json={"name": "Bad Name"}), 400, detail_contains="'name'")


@pytest.mark.parametrize("value", ["not json", "[1,"])
def test_malformed_json_is_400(client: TestClient, org: Org, value: str) -> None:
    response = client.post("/data/foundation/catalog/dataSets", headers=org.headers(), content=value)
    assert_aep_error(response, 400, detail_contains="not valid JSON")
