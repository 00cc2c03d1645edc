"""Streaming ingestion: ``POST /collection/{inletId}`` and ``POST /collection/batch/{inletId}``.

No credentials are needed unless the inlet is authenticated (as in AEP): the inlet id is a 256-bit secret,
and an unknown one is a 404. Errors take the Data Collection Core Service's shape
(``help/ingestion/quality/streaming-validation.md``), not the platform's.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from openseg.api.asgi import Shortcut
from openseg.api.deps import caller, query_bool, raw_body
from openseg.api.json_input import parse_json
from openseg.api.lanes import run_in
from openseg.clock import now_ms
from openseg.container import Services
from openseg.errors import BadRequest, Forbidden, NotFound, OpensegError, Unauthorized
from openseg.store.stream_log import SqliteStreamLog
from openseg.store.streaming import NotKept
from openseg.streaming.collection import Collector, MessageRefused, check_size, find_inlet
from openseg.streaming.model import Connection, LogEntry

router = APIRouter(prefix="/collection", tags=["streaming"])

_INLET_PROBLEM = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
_AUTH_PROBLEM = "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"


def _problem(status: int, title: str, message: str, problem: str = _INLET_PROBLEM,
             cause: dict[str, Any] | None = None) -> JSONResponse:
    report: dict[str, Any] = {"message": message}
    if cause is not None:
        report["cause"] = cause
    return JSONResponse({"type": problem, "status": status, "title": title, "report": report}, status_code=status)


def _error(exc: OpensegError, inlet_id: str) -> JSONResponse:
    if isinstance(exc, MessageRefused):
        cause = None
        if exc.causes:
            cause = {"_streamingValidation": [{
                "schemaLocation": "#", "pointerToViolation": "#", "causingExceptions": exc.causes,
                "message": f"{len(exc.causes)} schema violations found"}]}
        return _problem(400, exc.title, exc.detail, cause=cause)
    if isinstance(exc, Unauthorized):
        return _problem(401, "Authorization", f"[{inlet_id}] {exc.detail}", _AUTH_PROBLEM)
    if isinstance(exc, Forbidden):
        return _problem(403, "Forbidden", f"[{inlet_id}] {exc.detail}", _AUTH_PROBLEM)
    if isinstance(exc, NotFound):
        return _problem(404, "Not Found", f"inletId: [{inlet_id}] is not a known inlet")
    return _problem(exc.status, exc.title, exc.detail)


def _inlet(request: Request, svc: Services, inlet_id: str) -> Connection:
    """The inlet, once its credentials (if it needs any) are those of its org."""
    connection = find_inlet(svc.streaming_store(), inlet_id)
    if connection.authentication_required:
        who = caller(request, svc)
        if who.org_id != connection.org_id:
            raise Forbidden(f"org '{who.org_id}' may not write to an inlet of another org")
        if who.sandbox_only is not None and who.sandbox_only != connection.sandbox_name:
            raise Forbidden(f"these credentials are scoped to sandbox '{who.sandbox_only}': they cannot write to "
                            f"an inlet of sandbox '{connection.sandbox_name}'")
    return connection


def _collector(svc: Services) -> Collector:
    store = svc.streaming_store()
    return Collector(store, store, svc.stream_log(), now_ms)


#: How /openapi.json describes the inlets' bodies (XDM payloads, read by the collector, not by a model: its
#: errors take the Data Collection shape), after AEP's ``streaming-ingestion.yaml``.
_XDM_MESSAGE = {
    "type": "object",
    "required": ["header", "body"],
    "properties": {
        "header": {"type": "object", "properties": {
            "schemaRef": {"type": "object", "properties": {"id": {"type": "string"}, "contentType": {"type": "string"}}},
            "imsOrgId": {"type": "string"}, "datasetId": {"type": "string"}, "flowId": {"type": "string"},
            "source": {"type": "object"}}},
        "body": {"type": "object", "required": ["xdmEntity"], "properties": {
            "xdmMeta": {"type": "object"}, "xdmEntity": {"type": "object"}}},
    },
}
_SYNC_VALIDATION = {"name": "syncValidation", "in": "query", "required": False,
                    "schema": {"type": "boolean"}, "description": "validate the message before answering"}
_ONE = {"requestBody": {"required": True, "content": {"application/json": {"schema": _XDM_MESSAGE}}},
        "parameters": [_SYNC_VALIDATION]}
_BATCH = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["messages"],
    "properties": {"messages": {"type": "array", "items": _XDM_MESSAGE}}}}}}}


def _message(raw: bytes) -> Any:
    check_size(len(raw))
    if not raw.strip():
        raise MessageRefused("the request body is empty; a JSON message is required")
    return parse_json(raw)


@router.post("/batch/{inlet_id}", status_code=207, openapi_extra=_BATCH)
async def collect_batch(inlet_id: str, request: Request, raw: bytes = Depends(raw_body)) -> JSONResponse:
    return await run_in(request, "collection", _collect_batch, inlet_id, request, raw)


def _collect_batch(svc: Services, inlet_id: str, request: Request, raw: bytes) -> JSONResponse:
    try:
        connection = _inlet(request, svc, inlet_id)
        # "The syncValidation query parameter is only available for the single message endpoint".
        if query_bool(request.query_params.get("syncValidation"), "syncValidation"):
            raise BadRequest("syncValidation is only available for the single message endpoint")
        body = _collector(svc).collect_batch(connection, _message(raw))
    except OpensegError as exc:
        return _error(exc, inlet_id)
    return JSONResponse(body, status_code=207)


#: A single message up to this size is acknowledged by the event loop itself when everything it needs is kept in
#: memory (see :func:`_acknowledged_here`): handing it to a thread of the collection lane cost 0.15 ms of CPU an
#: acknowledgement, a fifth of one.
INLINE_BYTES = 64 * 1024


@router.post("/{inlet_id}", openapi_extra=_ONE)
async def collect(inlet_id: str, request: Request, raw: bytes = Depends(raw_body)) -> JSONResponse:
    # A message Acknowledgements (below) did not acknowledge on the event loop. (A comment, not a docstring: the
    # docstring is the route's description in /openapi.json.)
    return await run_in(request, "collection", _collect, inlet_id, request, raw)


#: The path of a single message (``/collection/batch/{inletId}`` has two segments after the prefix).
_ONE_PATH = re.compile(r"^/collection/([^/]+)$")


class Acknowledgements(Shortcut):
    """ASGI middleware acknowledging ``POST /collection/{inletId}`` on the event loop, before FastAPI routes the
    request, whenever :func:`_acknowledged_here` can (what it cannot goes on to :func:`collect` with its body).

    Routing, dependencies and the endpoint's machinery were a third of the event loop's CPU per acknowledgement
    (0.2 of 0.7 ms at 500 messages a second), the one cost of a streamed message that every other request's
    latency waits behind; the check, the log's commit and the answer are the route's own."""

    def matches(self, path: str) -> str | None:
        found = _ONE_PATH.match(path)
        return None if found is None else found.group(1)

    async def answer(self, request: Request, matched: str, raw: bytes) -> JSONResponse | None:
        here = _acknowledged_here(request, matched, raw)
        if here is None or isinstance(here, JSONResponse):  # the lane's to acknowledge, or refused
            return here
        log, entry, body = here
        await asyncio.wrap_future(log.submit([entry]))  # on disk before the acknowledgement, as in the lane
        return JSONResponse(body)


def _acknowledged_here(request: Request, inlet_id: str, raw: bytes
                       ) -> tuple[SqliteStreamLog, LogEntry, dict[str, Any]] | JSONResponse | None:
    """A small message to an inlet without credentials, checked on the event loop: the open log, the message's
    entry and its acknowledgement, or the refusal. None when the check would have to wait on a disk or the
    metadata database (the inlet, its dataset or the log not kept yet, credentials to check, a large body): the
    collection lane acknowledges it then, as it does every batch."""
    svc: Services = request.app.state.services
    store, log = svc.streaming_store(), svc.open_stream_log()
    connection = store.kept_inlet(inlet_id)
    if log is None or connection is None or connection.authentication_required or len(raw) > INLINE_BYTES:
        return None
    try:
        sync = query_bool(request.query_params.get("syncValidation"), "syncValidation")
        entry, body = Collector(store, store.kept(), log, now_ms).accept(connection, _message(raw), sync=sync)
    except NotKept:
        return None
    except OpensegError as exc:
        return _error(exc, inlet_id)
    return log, entry, body


def _collect(svc: Services, inlet_id: str, request: Request, raw: bytes) -> JSONResponse:
    try:
        connection = _inlet(request, svc, inlet_id)
        sync = query_bool(request.query_params.get("syncValidation"), "syncValidation")
        body = _collector(svc).collect(connection, _message(raw), sync=sync)
    except OpensegError as exc:
        return _error(exc, inlet_id)
    return JSONResponse(body)
