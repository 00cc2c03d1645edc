"""The Edge Network Server API (``/ee/v2/interact``, ``/ee/v2/collect``) and openseg's datastreams
(``/data/core/edge/datastreams``, an extension: AEP configures datastreams in its UI).

The ``/ee/v2`` routes take the platform's credentials, as ``server.adobedc.net`` does
(``help/server-api/authentication.md``), and find the datastream in the caller's org: in the sandbox
``x-sandbox-name`` names when it is sent (optional there), else in whichever sandbox of the org holds it, as
AEP finds a datastream by its id. Their errors are the Edge Network's problem details
(``application/problem+json``), not the platform's error body.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import threading
import uuid
import weakref
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from openseg.api.asgi import Shortcut
from openseg.api.deps import Caller, Tenant, caller, json_object, query_bool, raw_body, services, tenant
from openseg.api.json_input import parse_json
from openseg.api.lanes import LaneUnavailable, run_in
from openseg.api.paging import children_page, parse_int
from openseg.clock import new_uuid, now_ms
from openseg.container import Services
from openseg.edge_target import StoresEdgeTarget
from openseg.errors import OpensegError
from openseg.store.datastreams import SqlAlchemyDatastreams
from openseg.streaming import datastreams, edge
from openseg.streaming.collection import check_size
from openseg.streaming.model import LogEntry

router = APIRouter(tags=["edge"])
DATASTREAMS = "/data/core/edge/datastreams"
INTERACT = "/ee/v2/interact"


class ProblemResponse(JSONResponse):
    media_type = "application/problem+json"


_EDGES: weakref.WeakKeyDictionary[Services, edge.Edge] = weakref.WeakKeyDictionary()
_EDGES_LOCK = threading.Lock()


def use_edge(svc: Services, service: edge.Edge) -> None:
    """Serve the edge routes of ``svc`` with ``service`` (tests give one an injected clock)."""
    with _EDGES_LOCK:
        _EDGES[svc] = service


def _edge(svc: Services) -> edge.Edge:
    """The one ``Edge`` of ``svc`` in this process: its compiled predicates serve every request."""
    with _EDGES_LOCK:
        found = _EDGES.get(svc)
        if found is None:
            found = _EDGES[svc] = edge.Edge(StoresEdgeTarget(svc), svc.stream_log(), lambda: dt.datetime.now(dt.UTC))
    return found


def _body(raw: bytes) -> Any:
    check_size(len(raw))
    if not raw.strip():
        raise edge.InvalidRequest("the request body is empty; a JSON body is required", field="body")
    return parse_json(raw)


def _request(request: Request) -> tuple[str, str | None]:
    """The request id (the caller's ``requestId``, else a new one) and the datastream id (``dataStreamId``, or
    ``configId`` as the Web SDK names it)."""
    params = request.query_params
    return params.get("requestId") or _request_id(), params.get("dataStreamId") or params.get("configId")


def _request_id() -> str:
    """A new request id, a random UUID as AEP's are: from Python's generator, not ``uuid4``'s ``os.urandom``,
    whose system call let go of the interpreter, which the event loop then waited to take back behind the
    server's other threads (3 % of the loop's samples in the streaming bench). An id, not a secret."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))


def _silent(request: Request) -> str | None:
    return request.query_params.get("silent")


#: A status and a JSON body, or no body: what an edge call's work hands back to its handler (plain data, so
#: that it may run in a lane's process).
Answer = tuple[int, dict[str, Any] | None]


def _problem(exc: OpensegError, who: edge.Tenant, request_id: str, datastream_id: str | None) -> Answer:
    return exc.status, edge.problem(exc, request_id=request_id, org_id=who.org_id, config_id=datastream_id)


def _respond(answer: Answer) -> Response:
    status, body = answer
    if body is None:
        return Response(status_code=status)
    return (ProblemResponse if status >= 400 else JSONResponse)(body, status_code=status)


def edge_caller(request: Request, svc: Services = Depends(services)) -> edge.Tenant:
    """The caller's org, and the sandbox ``x-sandbox-name`` names when it is sent (as everywhere, scoped
    credentials may name only their own); without it a datastream is found in any sandbox of the org."""
    if "x-sandbox-name" in request.headers:
        who: Tenant = tenant(request, svc)
        return edge.Tenant(who.org_id, who.sandbox.id)
    found: Caller = caller(request, svc)
    return edge.Tenant(found.org_id, None, found.sandbox_only)


_XDM_EVENT = {"type": "object", "required": ["xdm"],
              "properties": {"xdm": {"type": "object", "description": "The ExperienceEvent, with identityMap "
                                                                      "marking one primary identity"},
                             "data": {"type": "object"}}}
_DATASTREAM_ID = {"name": "dataStreamId", "in": "query", "required": True, "schema": {"type": "string"}}
_INTERACT = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["event"], "properties": {"event": _XDM_EVENT}}}}},
    "parameters": [_DATASTREAM_ID]}
_COLLECT = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
    "type": "object", "required": ["events"], "properties": {"events": {"type": "array", "items": _XDM_EVENT}}}}}},
    "parameters": [_DATASTREAM_ID, {"name": "silent", "in": "query", "schema": {"type": "boolean"}}]}


@router.post(INTERACT, openapi_extra=_INTERACT)
async def interact(request: Request, who: edge.Tenant = Depends(edge_caller), raw: bytes = Depends(raw_body)) -> Response:
    """One event: the synchronous segments its profile qualifies for, this event included."""
    request_id, datastream_id = _request(request)
    try:
        answer, entries = await run_in(request, "edge", _interact, who, raw, request_id, datastream_id)
        await _log(request, entries)
    except LaneUnavailable as exc:
        answer = _problem(exc, who, request_id, datastream_id)
    return _respond(answer)


async def _log(request: Request, entries: list[LogEntry]) -> None:
    """Append what an edge call logs through this process's log, with the acknowledgements' group commits: the
    edge lane may run in processes of its own, and the log has one writer (``Edge.interaction``). Once the log is
    open the event loop awaits its commit (a thread of the collection lane waiting for it cost 0.15 ms of CPU a
    call); the first call opens it in that lane."""
    if not entries:
        return
    log = request.app.state.services.open_stream_log()
    if log is None:
        await run_in(request, "collection", _append, entries)
    else:
        await asyncio.wrap_future(log.submit(entries))


def _append(svc: Services, entries: list[LogEntry]) -> None:
    svc.stream_log().append(entries)


def _interact(svc: Services, who: edge.Tenant, raw: bytes, request_id: str,
              datastream_id: str | None) -> tuple[Answer, list[LogEntry]]:
    try:
        body = _body(raw)
        service = _edge(svc)
        with service.pinned():
            handle, entries = service.interaction(service.datastream(who, datastream_id), body)
    except OpensegError as exc:
        return _problem(exc, who, request_id, datastream_id), []
    return (200, {"requestId": request_id, "handle": handle}), entries


class EdgeCalls(Shortcut):
    """ASGI middleware answering ``POST /ee/v2/interact`` before FastAPI routes it: the caller's credentials are
    checked in the edge lane with the call's work (:func:`_interact_as`), so the event loop only hands the request
    over, awaits its log entries' commit and answers. What the lane does not answer (credentials refused, a lane
    unavailable, an error) goes on to :func:`interact` with its body, which answers it as it always has.

    Through FastAPI, the route's dependency (the credentials' check, in a thread of the server) with routing and
    dependency solving cost the server 3.0 ms of CPU a call, 1.7 ms so (100 calls a second over the 1M-profile
    bench home): the checks moved to the lane cost it 0.3 ms more."""

    def matches(self, path: str) -> bool | None:
        return True if path == INTERACT else None

    async def answer(self, request: Request, matched: bool, raw: bytes) -> Response | None:
        request_id, datastream_id = _request(request)
        try:
            done = await run_in(request, "edge", _interact_as, request.scope["headers"], request.scope["query_string"],
                                raw, request_id, datastream_id)
            if done is None:
                return None
            answer, entries = done
            await _log(request, entries)
        except Exception:  # noqa: BLE001 - the route answers it (a lane unavailable, an error) as it always has
            return None
        return _respond(answer)


def _interact_as(svc: Services, headers: list[tuple[bytes, bytes]], query: bytes, raw: bytes, request_id: str,
                 datastream_id: str | None) -> tuple[Answer, list[LogEntry]] | None:
    """:func:`_interact` for the caller the request's headers authenticate (as :func:`edge_caller` does); None
    when they do not (the route answers that, with its dependencies' errors)."""
    request = Request({"type": "http", "method": "POST", "path": INTERACT, "headers": headers, "query_string": query,
                       "path_params": {}})
    try:
        who = edge_caller(request, svc)
    except OpensegError:
        return None
    return _interact(svc, who, raw, request_id, datastream_id)


@router.post("/ee/v2/collect", status_code=202, openapi_extra=_COLLECT)
async def collect(request: Request, who: edge.Tenant = Depends(edge_caller), raw: bytes = Depends(raw_body)) -> Response:
    """Events in bulk: 202 with the request id once they are durable; 204 and no body with ``silent=true``."""
    request_id, datastream_id = _request(request)
    try:
        answer, entries = await run_in(request, "edge", _collect, who, raw, _silent(request), request_id,
                                       datastream_id)
        await _log(request, entries)
    except LaneUnavailable as exc:
        answer = _problem(exc, who, request_id, datastream_id)
    return _respond(answer)


def _collect(svc: Services, who: edge.Tenant, raw: bytes, silent_text: str | None, request_id: str,
             datastream_id: str | None) -> tuple[Answer, list[LogEntry]]:
    try:
        body = _body(raw)
        silent = query_bool(silent_text, "silent")
        service = _edge(svc)
        with service.pinned():
            entries = service.collection(service.datastream(who, datastream_id), body)
    except OpensegError as exc:
        return _problem(exc, who, request_id, datastream_id), []
    return ((204, None) if silent else (202, {"requestId": request_id})), entries


@router.post(DATASTREAMS, status_code=201)
def create_datastream(who: Tenant = Depends(tenant), svc: Services = Depends(services),
                      body: dict[str, Any] = Depends(json_object)) -> JSONResponse:
    store = SqlAlchemyDatastreams(svc.db)
    created = datastreams.create_datastream(store, store, who.org_id, who.sandbox.id, who.sandbox.name, body,
                                            datastream_id=new_uuid(), now=now_ms())
    return JSONResponse(datastreams.datastream_json(created), status_code=201)


@router.get(DATASTREAMS)
def list_datastreams(request: Request, who: Tenant = Depends(tenant),
                     svc: Services = Depends(services)) -> dict[str, Any]:
    limit = parse_int(request.query_params.get("limit"), "limit", 20, minimum=1, maximum=100)
    start = parse_int(request.query_params.get("start"), "start", 0)
    found = SqlAlchemyDatastreams(svc.db).in_sandbox(who.org_id, who.sandbox.id)
    page = [datastreams.datastream_json(d) for d in found[start:start + limit]]
    return children_page(page, total=len(found), start=start, limit=limit, path=DATASTREAMS)


@router.get(DATASTREAMS + "/{datastream_id}")
def get_datastream(datastream_id: str, who: Tenant = Depends(tenant),
                   svc: Services = Depends(services)) -> dict[str, Any]:
    found = datastreams.get_datastream(SqlAlchemyDatastreams(svc.db), who.org_id, who.sandbox.id, datastream_id)
    return datastreams.datastream_json(found)
