"""The contract suite: every operation docs/aep-compatibility.md marks "implemented" gets the spec's own example
request (its path ids swapped for real resources of the test sandbox, see ``resources.py``) and must answer
a success status the spec lists, with a body valid against the spec's response schema.

What is not taken from the spec as it stands is named here, with its reason:
- ``SPEC_DEFECTS``: the two response schemas ``../shared/aep-openapi/README.md`` says are wrong, replaced by
  the shape Adobe's guides document;
- ``SWAPS`` and ``ADAPTATIONS``: ids of Adobe's sample sandbox in the examples, swapped for ours, and the few
  examples that cannot mean anything outside Adobe's sample sandbox;
- ``DEVIATIONS``: operations that answer otherwise today, each being fixed under issue #15; checked to still
  deviate, so an entry goes as soon as its fix lands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.api.flows import EVENT, PROFILE
from tests.conftest import Org
from tests.contract import compatibility
from tests.contract.aep_specs import (
    Operation,
    operations,
    query_examples,
    request_body_example,
    response_schema_pointer,
    schema_errors,
)
from tests.contract.resources import World, path_value

OPERATIONS = {(op.service, op.method, op.path): op for op in operations()}
IMPLEMENTED = [OPERATIONS[(row.service, row.method, row.path)] for row in compatibility.implemented()]

#: The two spec defects of ../shared/aep-openapi/README.md: the response schema the guides document instead.
SPEC_DEFECTS: dict[str, dict[str, Any]] = {
    # The list reuses the single-definition schema in the spec; the Segmentation guide (segment-definitions
    # endpoint, "Retrieve a list of segment definitions") and real answers are {segments, page, link}.
    "GET /data/core/ups/segment/definitions": {
        "type": "object", "required": ["segments", "page", "link"],
        "properties": {
            "segments": {"type": "array", "items": {"$ref": "urn:aep:segmentation#/paths/~1segment~1definitions~1"
                                                            "{SEGMENT_ID}/get/responses/200/content/application~1json/schema"}},
            "page": {"type": "object"}, "link": {"type": "object"}}},
    # The spec gives a `metadata` schema; the Data Access tutorial ("Access a file using a file ID") shows
    # {data: [{name, length, _links}], _page}.
    "GET /data/foundation/export/files/{dataSetFileId}": {
        "type": "object", "required": ["data", "_page"],
        "properties": {"data": {"type": "array", "items": {"type": "object", "required": ["name", "length"],
                                                           "properties": {"name": {"type": "string"},
                                                                          "length": {"type": "string"}}}},
                       "_page": {"type": "object"}}},
}

#: Body fields holding an id of Adobe's sample sandbox -> the resource of ours that replaces it. A path is a
#: tuple of keys, ``*`` for any list item, and matches at any depth of the body.
SWAPS: dict[tuple[str, ...], str] = {
    ("segmentId",): "segment", ("mergePolicyId",): "policy", ("mergePolicy", "id"): "policy",
    ("destination", "datasetId"): "union", ("datasetId",): "dataset",
    ("identities", "*", "entityId"): "profile", ("identities", "*", "entityIdNS", "code"): "namespace",
    ("schemaRef", "id"): "profile_schema",  # a schema of Adobe's sample tenant -> the XDM profile schema
}
#: The body's top-level ``id`` (and a bulk-get's ``ids[*].id``) is the resource the path is about.
ID_OF_PATH = {"/segment/definitions": "segment", "/segment/jobs": "segment_job", "/mergePolicies": "policy"}
#: Query parameters naming a profile or a merge policy of Adobe's sample sandbox -> ours; and the required ones
#: the spec gives no example for: a Data Access file's ``path`` (its name) and a batch preview's ``format``.
QUERY_SWAPS = {"entityId": "profile", "entityIdNS": "namespace", "mergePolicyId": "policy", "path": "file_path",
               "format": "upload_format"}


def _adapt_query_service_query(body: dict[str, Any], world: World) -> dict[str, Any]:
    # The example is a template (`$key` parameters, templateId) turned into a CTAS / INSERT INTO over tables of
    # Adobe's sample sandbox; openseg runs read-only SELECTs (CTAS and templates are out of scope in the
    # table): the example's name and description, with a SELECT over the test sandbox's dataset.
    world["dataset"]
    return {"dbName": "prod:all", "sql": "SELECT count(*) AS n FROM people", "name": body["name"],
            "description": body["description"]}


def _adapt_catalog_batch(body: dict[str, Any], world: World) -> dict[str, Any]:
    # The example relates the batch to Adobe's sample batch `foo-batch`; every openseg batch is filed under one
    # dataset, named among its relatedObjects: the example's related object (its status, errors, metrics kept)
    # becomes the test dataset.
    related = [{**body["relatedObjects"][0], "type": "dataSet", "id": world["dataset"]}]
    return {**body, "relatedObjects": related}


def _adapt_preview(body: dict[str, Any], world: World) -> dict[str, Any]:
    # `metrics.commerce.abandons` is the field of a legacy XDM layout Adobe's sample sandbox still has; the
    # standard ExperienceEvent schema openseg checks fields against has it as `commerce.cartAbandons`.
    expression = body["predicateExpression"].replace("metrics.commerce.abandons", "commerce.cartAbandons")
    return {**body, "predicateExpression": expression}


def _adapt_streaming_message(message: dict[str, Any], world: World, schema: str, dataset: str) -> dict[str, Any]:
    # The example's schema `https://ns.adobe.com/{TENANT_ID}/schemas/{SCHEMA_ID}` is a placeholder for one of
    # Adobe's sample tenant, as are its org and dataset: the standard XDM schema its record is of, a dataset of
    # that schema in the test sandbox, and our org.
    for ref in (message["header"]["schemaRef"], message["body"]["xdmMeta"]["schemaRef"]):
        ref["id"] = schema
    message["header"].update(imsOrgId=world.org.org_id, datasetId=world[dataset])
    return message


#: Examples that cannot mean anything outside Adobe's sample sandbox, and what is sent instead (with why).
ADAPTATIONS: dict[str, Callable[[Any, World], Any]] = {
    "POST /data/foundation/query/queries": _adapt_query_service_query,
    "POST /data/foundation/catalog/batches": _adapt_catalog_batch,
    "POST /data/foundation/catalog/batches/{BATCH_ID}": _adapt_catalog_batch,
    "PUT /data/foundation/catalog/batches/{BATCH_ID}": _adapt_catalog_batch,
    "PATCH /data/foundation/catalog/batches/{BATCH_ID}": _adapt_catalog_batch,
    "POST /data/core/ups/preview": _adapt_preview,
    # One message: an Individual Profile record (person, workEmail).
    "POST /collection/{CONNECTION_ID}": lambda body, world: _adapt_streaming_message(body, world, PROFILE, "dataset"),
    # A batch of one message: an ExperienceEvent record (environment, productListItems, commerce).
    "POST /collection/batch/{CONNECTION_ID}": lambda body, world: {"messages": [
        _adapt_streaming_message(message, world, EVENT, "event_dataset") for message in body["messages"]]},
}

#: Raw bodies for operations that upload bytes (the spec gives no example file).
UPLOADS = {"PUT /data/foundation/import/batches/{batchId}/datasets/{datasetId}/files/{filePath}":
           b'{"identityMap": {"email": [{"id": "new@example.com", "primary": true}]}}\n',
           "PATCH /data/foundation/import/batches/{batchId}/datasets/{datasetId}/files/{filePath}":
           b'{"identityMap": {"email": [{"id": "part@example.com", "primary": true}]}}\n'}

#: Operations that answer otherwise than the spec today, each being fixed by another change of issue #15: the
#: problem the contract check reports (a part of its text), and what the spec wants. Each is checked to still
#: deviate in just that way, so an entry goes as soon as its fix lands.
DEVIATIONS: dict[str, tuple[str, str]] = {
    "POST /data/foundation/import/batches": ("status: 'loading' is not one of",
                                             "a batch status of the spec's enum (`loading` is not in it)"),
}


def _swap(body: Any, world: World, path: tuple[str, ...] = ()) -> Any:
    if isinstance(body, dict):
        swapped = {}
        for key, value in body.items():
            here = (*path, key)
            target = next((resource for suffix, resource in SWAPS.items() if _ends_with(here, suffix)), None)
            swapped[key] = world[target] if target and isinstance(value, str) else _swap(value, world, here)
        return swapped
    if isinstance(body, list):
        return [_swap(item, world, (*path, "*")) for item in body]
    return body


def _ends_with(path: tuple[str, ...], suffix: tuple[str, ...]) -> bool:
    return len(path) >= len(suffix) and all(s in ("*", p) for p, s in zip(path[-len(suffix):], suffix, strict=True))


def _own_ids(body: Any, operation: Operation, world: World) -> Any:
    """The example's ``id`` / ``imsOrgId`` / bulk-get ``ids`` made ours."""
    resource = next((r for suffix, r in ID_OF_PATH.items() if re.sub(r"/(\{[^}]+\}|bulk-get)$", "",
                                                                     operation.path).endswith(suffix)), None)
    if isinstance(body, dict):
        if "imsOrgId" in body:
            body["imsOrgId"] = world.org.org_id
        if resource and isinstance(body.get("id"), str):
            body["id"] = world[resource]
        if resource and isinstance(body.get("ids"), list) and body["ids"]:
            body["ids"][0]["id"] = world[resource]  # the others stay unknown ids: the 207's per-item answer
    return body


def example_request(operation: Operation, world: World) -> dict[str, Any]:
    """The spec's example request for ``operation`` with our ids: method, url, params and body."""
    url = re.sub(r"\{([^}]+)\}", lambda m: path_value(world, operation, m.group(1)), operation.openseg_path)
    params = query_examples(operation)
    for parameter in operation.parameters():  # a required parameter with no example: its first allowed value
        if parameter.get("in") == "query" and parameter.get("required") and parameter["name"] not in params:
            params[parameter["name"]] = parameter.get("schema", {}).get("enum", [None])[0]
    params = {k: world[QUERY_SWAPS[k]] if k in QUERY_SWAPS else v for k, v in params.items()}
    request: dict[str, Any] = {"method": operation.method, "url": url, "params": params or None}
    example = request_body_example(operation)
    if operation.key in UPLOADS:
        request["content"] = UPLOADS[operation.key]
        request["headers"] = _required_headers(operation, len(UPLOADS[operation.key]))
    elif example is not None:
        body = _own_ids(_swap(example[1], world), operation, world)
        if operation.key in ADAPTATIONS:
            body = ADAPTATIONS[operation.key](body, world)
        request["content"] = json.dumps(body)
        request["headers"] = {"Content-Type": "application/json"}
    return request


def _required_headers(operation: Operation, length: int) -> dict[str, str]:
    """The headers an upload's spec requires beyond the credentials: an enum's first value (its
    ``Content-Type``), and ``Content-Range`` naming the whole body."""
    headers = {}
    for parameter in operation.parameters():
        if parameter.get("in") != "header" or not parameter.get("required"):
            continue
        if parameter["name"].lower() == "content-range":
            headers[parameter["name"]] = f"bytes 0-{length - 1}/{length}"
        elif parameter.get("schema", {}).get("enum"):
            headers[parameter["name"]] = parameter["schema"]["enum"][0]
    return headers


def contract_problems(operation: Operation, world: World) -> list[str]:
    """How the answer to the spec's example request breaks the spec (empty when it keeps it)."""
    request = example_request(operation, world)
    response = world.client.request(**{**request, "headers": {**world.headers, **request.get("headers", {})}})
    expected = operation.success_codes()
    if response.status_code not in expected:
        return [f"status {response.status_code}, the spec says {expected}: {response.text[:500]}"]
    pointer = response_schema_pointer(operation, response.status_code)
    schema = SPEC_DEFECTS.get(operation.key) or ({"$ref": pointer} if pointer else None)
    if schema is None:
        return []
    try:
        body = response.json()
    except ValueError:
        return [f"the spec documents a JSON body; the answer is {response.text[:200]!r}"]
    return schema_errors(operation.service, schema, body)


@pytest.mark.parametrize("operation", IMPLEMENTED, ids=[op.key for op in IMPLEMENTED])
def test_operation_answers_the_specs_example_as_the_spec_says(operation: Operation, client: TestClient, org: Org,
                                                               drain: Callable[[], int]) -> None:
    problems = contract_problems(operation, World(client, org, drain))
    if operation.key in DEVIATIONS:
        known, wanted = DEVIATIONS[operation.key]
        assert problems, f"{operation.key} now answers as the spec says ({wanted}): remove it from DEVIATIONS"
        assert any(known in problem for problem in problems), (
            f"{operation.key} deviates otherwise than DEVIATIONS says ({known!r}):\n" + "\n".join(problems))
    else:
        assert problems == [], f"{operation.key}:\n" + "\n".join(problems)


def test_the_suite_covers_every_implemented_operation(capsys: pytest.CaptureFixture[str]) -> None:
    rows = compatibility.implemented()
    assert len(IMPLEMENTED) == len(rows) == len({op.key for op in IMPLEMENTED})
    assert set(DEVIATIONS) <= {op.key for op in IMPLEMENTED}, "a deviation of an operation not implemented"
    assert set(SPEC_DEFECTS) <= {op.key for op in IMPLEMENTED}
    with capsys.disabled():
        print(f"\ncontract suite: {len(IMPLEMENTED)} AEP operations covered ({len(rows)} implemented rows), "
              f"{len(DEVIATIONS)} known deviations, {len(SPEC_DEFECTS)} spec defects overridden")


class _Named:
    """A stand-in world whose resources are their own names (the request is built, not sent)."""

    org = Org(org_id="ORG@AdobeOrg", api_key="", token="")

    def __getitem__(self, resource: str) -> str:
        return f"<{resource}>"


def test_the_request_sent_is_the_specs_example_with_our_ids() -> None:
    world: Any = _Named()
    by_key = {op.key: op for op in OPERATIONS.values()}
    patch = example_request(by_key["PATCH /data/core/ups/segment/definitions/{SEGMENT_ID}"], world)
    spec_body = request_body_example(by_key["PATCH /data/core/ups/segment/definitions/{SEGMENT_ID}"])
    assert spec_body is not None and spec_body[1]["name"] == "People who ordered in the last 30 days"
    assert patch["url"] == "/data/core/ups/segment/definitions/<segment>"
    assert json.loads(patch["content"]) == {**spec_body[1], "id": "<segment>", "imsOrgId": "ORG@AdobeOrg",
                                            "mergePolicyId": "<policy>"}
    export = json.loads(example_request(by_key["POST /data/core/ups/export/jobs"], world)["content"])
    assert (export["mergePolicy"]["id"], export["destination"]["datasetId"],
            export["filter"]["segments"][0]["segmentId"]) == ("<policy>", "<union>", "<segment>")
    bulk = json.loads(example_request(by_key["POST /data/core/ups/segment/definitions/bulk-get"], world)["content"])
    assert bulk == {"ids": [{"id": "<segment>"}, {"id": "c527dc3f-07fe-4b96-be4e-23f38e734ff8"}]}
    assert example_request(by_key["GET /data/core/ups/segment/definitions"], world)["params"] == {
        "start": 109103839, "limit": 10, "page": 0, "sort": "sort=name:asc,internalId:desc"}
    assert example_request(by_key["POST /data/foundation/import/batches/{batchId}"], world)["params"] == {
        "action": "COMPLETE"}
    assert example_request(by_key["GET /data/foundation/catalog/batches/uniques/{FIELD}"], world)["url"] == (
        "/data/foundation/catalog/batches/uniques/<batch_field>")
    with pytest.raises(LookupError, match=r"no resource fills \{tagNamespace\}"):
        example_request(by_key["GET /data/foundation/catalog/tags/{tagNamespace}"], world)
