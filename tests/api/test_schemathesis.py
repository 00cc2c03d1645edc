"""Property-based API fuzzing (issue #19): schemathesis generates requests from openseg's own
``/openapi.json`` (path and query parameters, headers and the request bodies it describes) and sends them,
with real credentials, to the app. No operation answers 5xx; every 4xx of the platform is AEP's error shape.

The budget is bounded (a few examples per operation) so that it runs in ``make test``. Every write operation
describes its body (the typed requests of ``api/models/``), so schemathesis sends bodies, not only
parameters; an operation it could not generate a request for would fail its own parametrized case.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from openseg.api.app import create_app
from openseg.api.deps import parse_model
from openseg.api.openapi import body_models
from openseg.bootstrap import build_services
from openseg.config import Settings
from tests.api.flows import create_dataset, json_lines, person, upload_batch
from tests.conftest import Org, make_org

#: Examples per operation.
EXAMPLES = 6
#: Bodies drawn per operation to check against the model that validates them.
BODY_EXAMPLES = EXAMPLES
#: Routes whose errors are not the platform's shape by contract (the inlets answer as AEP's Data Collection).
OTHER_ERROR_SHAPES = ("/collection/",)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Org]]:
    home: Path = tmp_path_factory.mktemp("schemathesis")
    services = build_services(Settings(home=home, database_url=f"sqlite:///{home}/openseg.db", lake=home / "lake"))
    app = create_app(services, run_worker=False)
    org = make_org(services)
    with TestClient(app) as client:  # some data, so that list and lookup routes have something to read
        people = create_dataset(client, org.headers())
        upload_batch(client, org.headers(), people, {"people.json": json_lines([person(i) for i in range(5)])})
        assert services.worker is not None
        services.worker.run_until_idle()
    yield app, org
    services.db.dispose()


@pytest.fixture(scope="module")
def api_schema(fuzzed: tuple[Any, Org]) -> Any:
    app, _ = fuzzed
    return schemathesis.openapi.from_asgi("/openapi.json", app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_operation_answers_5xx_and_errors_are_aeps_shape(case: Any, fuzzed: tuple[Any, Org]) -> None:
    _, org = fuzzed
    response = case.call(headers=org.headers())
    assert response.status_code < 500, (case.method, case.formatted_path, response.status_code, response.text[:500])
    if 400 <= response.status_code < 500 and case.method != "HEAD" \
            and not any(part in case.formatted_path for part in OTHER_ERROR_SHAPES):
        body = response.json()
        gateway = {"error_code", "message"} <= set(body)  # 401/403: the API gateway's shape, as AEP
        assert gateway or {"type", "title", "status", "detail"} <= set(body), (case.method, case.formatted_path, body)


#: Write operations whose request is its query string alone (``?action=``), as in AEP's specs (no body).
NO_BODY = {("POST", "/data/foundation/import/batches/{batch_id}"),
           ("POST", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}")}
#: File uploads: the body is the file's bytes.
UPLOADS = {("PUT", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"),
           ("PATCH", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}")}


def test_every_write_operation_describes_its_body(api_schema: Any) -> None:
    """So that clients and fuzzers can send bodies: every POST, PUT and PATCH has a ``requestBody`` schema."""
    described, missing = {}, []
    for result in api_schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key[0] not in ("POST", "PUT", "PATCH") or key in NO_BODY:
            continue
        media = {body.media_type: body.definition.get("schema") for body in operation.body}
        if not any(media.values()):
            missing.append(key)
        described[key] = media
    assert missing == []
    assert len(described) >= 34
    for key in UPLOADS:
        assert described[key] == {"application/octet-stream": {"type": "string", "format": "binary"}}
    json_bodies = [key for key, media in described.items() if key not in UPLOADS]
    assert all(list(described[key]) == ["application/json"] for key in json_bodies)


def test_the_bodies_described_are_the_bodies_validated(fuzzed: tuple[Any, Org], api_schema: Any) -> None:
    """What schemathesis generates from a body's schema passes the model that validates that body: the
    description and the validation are one."""
    app, _ = fuzzed
    models = body_models(app)
    assert len(models) >= 30
    for result in api_schema.get_all_operations():
        operation = result.ok()
        model = models.get((operation.method.upper(), operation.path))
        if model is not None:
            _validated_by(model, operation.as_strategy())()


def _validated_by(model: Any, cases: Any) -> Any:
    @given(case=cases)
    @settings(max_examples=BODY_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    def validates(case: Any) -> None:
        parse_model(model, case.body)

    return validates
