"""Streaming connections (Flow Service ``/connections``): an inlet bound to a dataset of the sandbox.

AEP binds an inlet to a dataset through a dataflow (source and target connections, a flow); openseg takes
the dataset in ``auth.params.datasetId`` (the contract's extension) and needs no dataflow, so an inlet works
at once (AEP asks to wait ~5 minutes after creating the dataflow).
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from openseg.errors import BadRequest, NotFound
from openseg.streaming.model import STREAMING_SPEC_ID, Connection

__all__ = ["SPEC_NAME", "STREAMING_SPEC_ID", "Where", "connection_json", "create_connection", "get_connection",
           "inlet_url"]
from openseg.streaming.ports import ConnectionRepository, DatasetLookup

SPEC_NAME = "Streaming Connection"


@dataclass(frozen=True)
class Where:
    """The org and sandbox a connection is created in (the sandbox's name is shown on the connection)."""

    org_id: str
    sandbox_id: str
    sandbox_name: str


#: The longest name and source id a connection keeps (the store's columns).
MAX_NAME = 512


def _string(value: object, field: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise BadRequest(f"'{field}' is required and must be a non-empty string", field=field)
    if len(value.strip()) > MAX_NAME:
        raise BadRequest(f"'{field}' is {len(value.strip())} characters long; at most {MAX_NAME} are allowed",
                         field=field)
    return value.strip()


def create_connection(connections: ConnectionRepository, datasets: DatasetLookup, where: Where,
                      body: dict[str, Any], now: int) -> Connection:
    """Create a streaming connection from AEP's request body (``providerId`` is accepted and ignored).

    Raises:
        BadRequest: naming the field: a missing name, another connection spec, ``dataType`` other than
            ``xdm`` (``raw`` needs Data Prep mapping, which openseg does not have), an unknown dataset.
    """
    name = _string(body.get("name"), "name")
    assert name is not None
    description = body.get("description")
    if description is not None and not isinstance(description, str):
        raise BadRequest("'description' must be a string", field="description")
    spec = body.get("connectionSpec")
    if not isinstance(spec, dict) or spec.get("id") != STREAMING_SPEC_ID:
        raise BadRequest(f"'connectionSpec.id' must be {STREAMING_SPEC_ID} (HTTP API streaming)",
                         field="connectionSpec.id")
    auth = body.get("auth")
    if not isinstance(auth, dict):
        raise BadRequest("'auth' is required: {\"specName\": \"Streaming Connection\", \"params\": {...}}",
                         field="auth")
    params = auth.get("params")
    if not isinstance(params, dict):
        raise BadRequest("'auth.params' is required and must be an object", field="auth.params")
    data_type = params.get("dataType", "xdm")
    if data_type != "xdm":
        raise BadRequest(f"'auth.params.dataType' must be 'xdm', not {data_type!r}: raw data needs Data Prep "
                         "mapping, which openseg does not support", field="auth.params.dataType")
    required = params.get("authenticationRequired", False)
    if not isinstance(required, bool):
        raise BadRequest("'auth.params.authenticationRequired' must be true or false",
                         field="auth.params.authenticationRequired")
    dataset_id = _string(params.get("datasetId"), "auth.params.datasetId")
    assert dataset_id is not None
    dataset = datasets.dataset(where.sandbox_id, dataset_id)
    if dataset is None:
        raise BadRequest(f"dataset '{dataset_id}' does not exist in this sandbox", field="auth.params.datasetId")
    if dataset.kind == "union":
        raise BadRequest("a profile__union dataset is written by export jobs, not by streaming",
                         field="auth.params.datasetId")
    # AEP: sourceId "is optional and will use the same value as the name attribute, if it is not provided".
    source_id = _string(params.get("sourceId"), "auth.params.sourceId", required=False) or \
        _string(params.get("name"), "auth.params.name", required=False) or name
    connection = Connection(
        id=str(uuid.uuid4()), org_id=where.org_id, sandbox_id=where.sandbox_id, sandbox_name=where.sandbox_name,
        inlet_id=secrets.token_hex(32), name=name, description=description, dataset_id=dataset_id,
        source_id=source_id, data_type="xdm", authentication_required=required, etag=f'"{uuid.uuid4()}"',
        created=now, updated=now,
    )
    connections.add(connection)
    return connection


def get_connection(connections: ConnectionRepository, where: Where, connection_id: str) -> Connection:
    found = connections.get(where.org_id, where.sandbox_id, connection_id)
    if found is None:
        raise NotFound.of("connection", connection_id)
    return found


def inlet_url(base_url: str, connection: Connection) -> str:
    return f"{base_url.rstrip('/')}/collection/{connection.inlet_id}"


def connection_json(connection: Connection, base_url: str) -> dict[str, Any]:
    """A connection as Flow Service's ``GET /connections/{id}`` item."""
    return {
        "id": connection.id,
        "createdAt": connection.created,
        "updatedAt": connection.updated,
        "createdBy": connection.org_id,
        "updatedBy": connection.org_id,
        "createdClient": "openseg",
        "updatedClient": "openseg",
        "sandboxId": connection.sandbox_id,
        "sandboxName": connection.sandbox_name,
        "imsOrgId": connection.org_id,
        "name": connection.name,
        "description": connection.description,
        "connectionSpec": {"id": STREAMING_SPEC_ID, "version": "1.0"},
        "state": "enabled",
        "auth": {
            "specName": SPEC_NAME,
            "params": {
                "sourceId": connection.source_id,
                "inletUrl": inlet_url(base_url, connection),
                "inletId": connection.inlet_id,
                "authenticationRequired": connection.authentication_required,
                "dataType": connection.data_type,
                "name": connection.name,
                "datasetId": connection.dataset_id,
            },
        },
        "version": connection.etag,
        "etag": connection.etag,
    }
