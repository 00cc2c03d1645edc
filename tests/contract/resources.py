"""The real resources that stand in for the ids of the spec's examples, made on demand through the API.

``PATH_PARAMETERS`` maps each path parameter name the specs use (``SEGMENT_ID``, ``batchId``, ...) to the
resource that fills it; a row flipped to "implemented" whose parameters are all named here is tested at
once, and one with a new parameter fails naming it. Each resource is built the first time a test asks for
it (with what it depends on), through the same HTTP calls a user makes.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from tests.api.flows import EVENT, PROFILE, UNION, create_dataset, json_lines, person, upload_batch
from tests.conftest import Org
from tests.contract.aep_specs import Operation

#: The one profile the test sandbox holds under this e-mail (entity lookups and deletes name it).
PROFILE_EMAIL = "p1@example.com"


class World:
    """One org's ``prod`` sandbox and the resources a contract test asks for, each made once."""

    def __init__(self, client: TestClient, org: Org, drain: Callable[[], int]) -> None:
        self.client, self.org, self.drain = client, org, drain
        self._made: dict[str, str] = {}

    @property
    def headers(self) -> dict[str, str]:
        return self.org.headers()

    def __getitem__(self, resource: str) -> str:
        if resource not in self._made:
            self._made[resource] = BUILDERS[resource](self)
        return self._made[resource]

    def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        response = self.client.request(method, path, headers=self.headers, **kwargs)
        assert response.status_code == status, f"setup: {method} {path} -> {response.status_code} {response.text}"
        return response.json()


def _dataset(world: World) -> str:
    """A Profile dataset with one successful batch of four people (p0..p3@example.com), ingested."""
    dataset = create_dataset(world.client, world.headers, "people")
    world._made["batch"] = upload_batch(world.client, world.headers, dataset,
                                        {"people.json": json_lines([person(i) for i in range(4)])})
    world.drain()
    return dataset


def _batch(world: World) -> str:
    """The dataset's successful batch (made with the dataset)."""
    world["dataset"]
    return world._made["batch"]


def _open_batch(world: World) -> str:
    """A batch of the dataset still open for uploads, with one file (the batch-ingestion calls use it)."""
    return upload_batch(world.client, world.headers, world["dataset"],
                        {"more.json": json_lines([person(9)])}, complete=False)


def _file(world: World) -> str:
    files = world.call("GET", f"/data/foundation/export/batches/{world['batch']}/files", 200)["data"]
    return str(files[0]["dataSetFileId"])


def _policy(world: World) -> str:
    """A merge policy over the dataset, its profile store built (previews and lookups read it)."""
    world["dataset"]
    body = {"name": "by time", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"},
            "schema": {"name": "_xdm.context.profile"}, "default": False}
    created = world.client.post("/data/core/ups/config/mergePolicies", headers=world.headers, json=body)
    assert created.status_code in (200, 201), created.text
    world.drain()
    return str(created.json()["id"])


def _segment(world: World) -> str:
    body = {"name": "US", "schema": {"name": "_xdm.context.profile"}, "mergePolicyId": world["policy"],
            "expression": {"type": "PQL", "format": "pql/text", "value": 'homeAddress.country = "US"'}}
    created = world.client.post("/data/core/ups/segment/definitions", headers=world.headers, json=body)
    assert created.status_code in (200, 201), created.text
    return str(created.json()["id"])


def _segment_job(world: World) -> str:
    world["dataset"]
    job = world.call("POST", "/data/core/ups/segment/jobs", 200, json=[{"segmentId": world["segment"]}])
    world.drain()
    return str(job["id"])


def _union(world: World) -> str:
    return create_dataset(world.client, world.headers, "export", schema=UNION, profile_enabled=False)


def _export_job(world: World) -> str:
    world["segment_job"]
    body = {"fields": "identityMap,homeAddress.country", "mergePolicy": {"id": world["policy"], "version": 1},
            "filter": {"segments": [{"segmentId": world["segment"], "segmentNs": "ups", "status": ["realized"]}]},
            "destination": {"datasetId": world["union"]}, "schema": {"name": "_xdm.context.profile"}}
    job = world.call("POST", "/data/core/ups/export/jobs", 200, json=body)
    world.drain()
    return str(job["id"])


def _schedule(world: World) -> str:
    body = {"name": "nightly", "type": "batch_segmentation", "properties": {"segments": ["*"]},
            "schedule": "0 0 1 * * ?", "state": "inactive"}
    created = world.client.post("/data/core/ups/config/schedules", headers=world.headers, json=body)
    assert created.status_code in (200, 201), created.text
    return str(created.json()["id"])


def _preview(world: World) -> str:
    world["dataset"]
    body = {"predicateExpression": 'homeAddress.country = "US"', "predicateType": "pql/text",
            "predicateModel": "_xdm.context.profile", "graphType": "none", "mergePolicyId": world["policy"]}
    created = world.call("POST", "/data/core/ups/preview", 201, json=body)
    world.drain()
    return str(created["previewId"])


def _query(world: World) -> str:
    """A query submitted and not run yet (the worker is drained only when a test asks): the spec's example
    PATCH cancels it."""
    world["dataset"]
    query = world.call("POST", "/data/foundation/query/queries", 202, json={"sql": "SELECT count(*) AS n FROM people"})
    return str(query["id"])


def _file_name(world: World) -> str:
    return "upload.json"


def _file_path(world: World) -> str:
    """The name of the Data Access file's one file (its ``?path=``)."""
    listing = world.call("GET", f"/data/foundation/export/files/{world['file']}", 200)["data"]
    return str(listing[0]["name"])


def _large_file(world: World) -> str:
    """A large file of the open batch, initialized (POST ?action=INITIALIZE) and waiting for its parts."""
    name = "large.json"
    world.call("POST", f"/data/foundation/import/batches/{world['open_batch']}/datasets/{world['dataset']}/files/"
               f"{name}", 200, params={"action": "INITIALIZE"})
    return name


def _catalog_batch(world: World) -> str:
    """A batch recorded through Catalog (a record of work done elsewhere: every field of it is the user's)."""
    body = {"status": "success", "externalId": "/elsewhere/1", "recordCount": 3,
            "relatedObjects": [{"type": "dataSet", "id": world["dataset"]}]}
    created = world.client.post("/data/foundation/catalog/batches", headers=world.headers, json=body)
    assert created.status_code == 201, created.text
    return str(created.json()[0].split("/")[-1])


def _inlet(world: World) -> str:
    """A streaming connection's inlet id (an unauthenticated inlet, over the Profile dataset)."""
    body = {"name": "ACME Streaming", "providerId": "521eee4d-8cbe-4906-bb48-fb6bd4450033",
            "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
            "auth": {"specName": "Streaming Connection",
                     "params": {"sourceId": "ACME Streaming", "dataType": "xdm", "name": "ACME Streaming",
                                "datasetId": world["dataset"]}}}
    created = world.call("POST", "/data/foundation/flowservice/connections", 201, json=body)
    (item,) = world.call("GET", f"/data/foundation/flowservice/connections/{created['id']}", 200)["items"]
    return str(item["auth"]["params"]["inletId"])


def _event_dataset(world: World) -> str:
    """An ExperienceEvent dataset (its ``classification.dataBehavior`` is ``time-series``)."""
    return create_dataset(world.client, world.headers, "events", schema=EVENT)


def _profile(world: World) -> str:
    """The e-mail of a profile the sandbox holds (its dataset ingested)."""
    world["dataset"]
    return PROFILE_EMAIL


BUILDERS: dict[str, Callable[[World], str]] = {
    "dataset": _dataset, "batch": _batch,
    "open_batch": _open_batch, "file": _file, "file_name": _file_name, "policy": _policy, "segment": _segment,
    "segment_job": _segment_job, "union": _union, "export_job": _export_job, "schedule": _schedule,
    "preview": _preview, "query": _query, "profile": _profile, "namespace": lambda world: "email",
    "profile_schema": lambda world: PROFILE, "file_path": _file_path, "large_file": _large_file,
    "catalog_batch": _catalog_batch, "event_dataset": _event_dataset, "inlet": _inlet,
    "new_batch_id": lambda world: f"contract-{uuid.uuid4().hex[:16]}",  # batch ids are unique across orgs
    "batch_field": lambda world: "status",
    "upload_format": lambda world: "json",
}

#: Path parameter of the specs -> the resource that fills it.
PATH_PARAMETERS: dict[str, str] = {
    "SEGMENT_ID": "segment", "SEGMENT_JOB_ID": "segment_job", "EXPORT_JOB_ID": "export_job",
    "PREVIEW_ID": "preview", "ESTIMATE_ID": "preview", "SCHEDULE_ID": "schedule", "mergePolicyId": "policy",
    "BATCH_ID": "batch", "batchId": "batch", "DATASET_ID": "dataset", "datasetId": "dataset", "id": "dataset",
    "dataSetFileId": "file", "filePath": "file_name", "queryid": "query", "FIELD": "batch_field",
    "CONNECTION_ID": "inlet",
}
#: Where one operation's path parameter needs another resource than its name's, and why.
OPERATION_PARAMETERS: dict[tuple[str, str], str] = {
    # createBatchWithId names a batch that does not exist yet.
    ("POST /data/foundation/catalog/batches/{BATCH_ID}", "BATCH_ID"): "new_batch_id",
    # The examples rewrite a batch's status and counters: a batch recorded through Catalog (on a batch openseg
    # ingests those are openseg's, and Catalog changes only what describes it; docs/aep-compatibility.md).
    ("PUT /data/foundation/catalog/batches/{BATCH_ID}", "BATCH_ID"): "catalog_batch",
    ("PATCH /data/foundation/catalog/batches/{BATCH_ID}", "BATCH_ID"): "catalog_batch",
    # The example's classification is `time-series`: an ExperienceEvent dataset's.
    ("PATCH /data/foundation/catalog/v2/dataSets/{DATASET_ID}", "DATASET_ID"): "event_dataset",
    # A part (PATCH) and the upload status (HEAD) are of a large file, initialized first.
    ("PATCH /data/foundation/import/batches/{batchId}/datasets/{datasetId}/files/{filePath}", "filePath"):
        "large_file",
    ("HEAD /data/foundation/import/batches/{batchId}/datasets/{datasetId}/files/{filePath}", "filePath"):
        "large_file",
}
#: Operations that act on a batch still open for uploads (uploading to it, completing it).
OPEN_BATCH_OPERATIONS = {"batch-ingestion"}


def path_value(world: World, operation: Operation, name: str) -> str:
    """The real id for path parameter ``name`` of ``operation``."""
    if (operation.key, name) in OPERATION_PARAMETERS:
        return world[OPERATION_PARAMETERS[(operation.key, name)]]
    if name not in PATH_PARAMETERS:
        raise LookupError(f"no resource fills {{{name}}} of {operation.key}: add it to PATH_PARAMETERS and "
                          "BUILDERS in tests/contract/resources.py")
    resource = PATH_PARAMETERS[name]
    if resource == "batch" and operation.service in OPEN_BATCH_OPERATIONS:
        resource = "open_batch"
    return world[resource]
