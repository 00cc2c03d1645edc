"""Streaming connections (Flow Service) in the contract's shapes, from the API and the CLI."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient
from typer.testing import CliRunner

from openseg.cli import app
from openseg.container import Services
from tests.api.aep import assert_aep_error
from tests.api.flows import UNION, create_dataset
from tests.conftest import Org
from tests.streaming.inlets import CONNECTIONS, EVENT_SCHEMA, connection_body, create_inlet


def test_a_connection_has_an_inlet_bound_to_its_dataset(client: TestClient, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    created = client.post(CONNECTIONS, headers=org.headers(), json=connection_body(dataset_id))
    assert created.status_code == 201, created.text
    assert set(created.json()) == {"id", "etag"}
    assert re.fullmatch(r"[0-9a-f-]{36}", created.json()["id"])
    found = client.get(f"{CONNECTIONS}/{created.json()['id']}", headers=org.headers())
    assert found.status_code == 200, found.text
    (item,) = found.json()["items"]
    params = item["auth"]["params"]
    assert re.fullmatch(r"[0-9a-f]{64}", params["inletId"])
    assert params["inletUrl"] == f"http://testserver/collection/{params['inletId']}"
    assert params == {"sourceId": "ACME Streaming", "inletUrl": params["inletUrl"], "inletId": params["inletId"],
                      "authenticationRequired": False, "dataType": "xdm", "name": "ACME Streaming",
                      "datasetId": dataset_id}
    assert item["id"] == created.json()["id"] and item["etag"] == created.json()["etag"]
    assert item["auth"]["specName"] == "Streaming Connection"
    assert item["state"] == "enabled"
    assert item["connectionSpec"] == {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"}
    assert item["imsOrgId"] == org.org_id and item["sandboxName"] == "prod"
    assert item["name"] == "ACME Streaming"
    assert item["description"] == "ACME streaming connection for customer data"


def test_an_authenticated_connection_says_so(client: TestClient, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    item = create_inlet(client, org, dataset_id, authenticated=True)
    assert item["auth"]["params"]["authenticationRequired"] is True


def test_a_connection_of_another_sandbox_is_404(client: TestClient, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    item = create_inlet(client, org, dataset_id)
    dev = client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                      json={"name": "dev", "title": "Development", "type": "development"})
    assert dev.status_code == 201, dev.text
    assert_aep_error(client.get(f"{CONNECTIONS}/{item['id']}", headers=org.headers("dev")), 404,
                     detail_contains=item["id"])


def test_bad_connection_bodies_name_the_field(client: TestClient, org: Org) -> None:
    events = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    union = create_dataset(client, org.headers(), "exports", UNION, profile_enabled=False)
    cases = [
        (connection_body(events, data_type="raw"), "auth.params.dataType"),
        (connection_body("5f0000000000000000000000"), "auth.params.datasetId"),
        (connection_body(union), "auth.params.datasetId"),
        ({**connection_body(events), "connectionSpec": {"id": "nope"}}, "connectionSpec.id"),
        ({**connection_body(events), "name": ""}, "name"),
        ({**connection_body(events), "name": "x" * 513}, "name"),
        ({**connection_body(events), "auth": {"specName": "Streaming Connection"}}, "auth.params"),
    ]
    for body, field in cases:
        response = client.post(CONNECTIONS, headers=org.headers(), json=body)
        answer = assert_aep_error(response, 400)
        assert answer["report"]["field"] == field, (field, answer)


def test_the_cli_creates_an_inlet_and_prints_its_url(services: Services, client: TestClient, org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    settings = services.settings
    env = {"OPENSEG_HOME": str(settings.home), "OPENSEG_DATABASE_URL": settings.database_url,
           "OPENSEG_LAKE": str(settings.lake)}
    done = CliRunner().invoke(app, ["streaming", "create", "--dataset", dataset_id, "--org", org.org_id,
                                    "--base-url", "https://openseg.example.com"], env=env)
    assert done.exit_code == 0, done.output
    connection_line, url = done.stdout.strip().splitlines()[-2:]
    inlet = re.fullmatch(r"https://openseg\.example\.com/collection/([0-9a-f]{64})", url)
    assert inlet is not None, url
    connection_id = connection_line.removeprefix("connection ")
    (item,) = client.get(f"{CONNECTIONS}/{connection_id}", headers=org.headers()).json()["items"]
    assert item["auth"]["params"]["inletId"] == inlet.group(1)
    assert item["auth"]["params"]["datasetId"] == dataset_id


def test_the_cli_names_an_unknown_dataset(services: Services, org: Org) -> None:
    settings = services.settings
    env = {"OPENSEG_HOME": str(settings.home), "OPENSEG_DATABASE_URL": settings.database_url,
           "OPENSEG_LAKE": str(settings.lake)}
    done = CliRunner().invoke(app, ["streaming", "create", "--dataset", "nosuch", "--org", org.org_id], env=env)
    assert done.exit_code == 2
    assert "dataset 'nosuch' does not exist in this sandbox" in done.output
