"""The FastAPI application: AEP paths, AEP error bodies, the worker it runs while it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Protocol

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from openseg import __version__
from openseg.api import (
    access,
    catalog,
    collection,
    data_access,
    definitions,
    edge,
    explain,
    exports,
    flowservice,
    ingest,
    jobs,
    merge_policies,
    preview,
    query,
    sandboxes,
    schedules,
    schema,
    ui,
)
from openseg.api.errors import install_error_handlers
from openseg.api.lanes import LaneProcesses
from openseg.api.openapi import describe_bodies
from openseg.container import Services

#: Routes that AEP's Segmentation, Profile, Catalog, Batch ingestion, Data Access and Query Service APIs do not
#: have (docs/aep-compatibility.md lists those APIs' operations): /openapi.json marks them with the tag
#: ``openseg extension`` and ``x-openseg-extension: true``. The sandbox routes follow the paths of AEP's
#: Sandbox Management API, which is not among the APIs openseg is checked against.
EXTENSIONS = frozenset({
    ("GET", "/health"),
    ("GET", "/data/foundation/sandbox-management/sandboxes"),
    ("POST", "/data/foundation/sandbox-management/sandboxes"),
    ("GET", "/data/foundation/sandbox-management/sandboxes/{name}"),
    ("GET", "/data/core/ups/segment/definitions/{definition_id}/members"),
    ("GET", "/data/core/ups/segment/definitions/{definition_id}/explain"),
    ("POST", "/data/core/ups/segment/definitions/{definition_id}/dryRun"),
    ("POST", "/data/core/ups/config/schedules/{schedule_id}"),
    ("GET", "/data/foundation/query/queries/{query_id}/results"),
    ("GET", "/data/core/ups/access/membership-history"),
    ("GET", "/data/core/ups/segment/schema"),
    ("POST", "/data/core/edge/datastreams"),
    ("GET", "/data/core/edge/datastreams"),
    ("GET", "/data/core/edge/datastreams/{datastream_id}"),
})
EXTENSION_TAG = "openseg extension"


def mark_extensions(app: FastAPI) -> None:
    """Mark the operations of ``EXTENSIONS`` as openseg's own in the app's OpenAPI document (made once), which
    describes every request body (``api/openapi.py``)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            describe_bodies(app, document)
            for path, item in document["paths"].items():
                for method, operation in item.items():
                    if (method.upper(), path) in EXTENSIONS:
                        operation["tags"] = [*operation.get("tags", []), EXTENSION_TAG]
                        operation["x-openseg-extension"] = True
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


class TrailingSlash:
    """Serve ``/path/`` as ``/path`` directly (AEP clients use both; curl without -L must work)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            if len(path) > 1 and path.endswith("/"):
                scope = dict(scope)
                scope["path"] = path.rstrip("/") or "/"
                if scope.get("raw_path"):
                    scope["raw_path"] = scope["raw_path"].rstrip(b"/") or b"/"
        await self.app(scope, receive, send)


class WorkerProcess(Protocol):
    """A worker run beside the app in a process of its own (``worker.process.WorkerProcess``)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def create_app(services: Services, *, run_worker: bool = True, worker_process: WorkerProcess | None = None,
               lane_processes: LaneProcesses | None = None) -> FastAPI:
    """Build the API over ``services``.

    Args:
        services: What the routes use.
        run_worker: Run ``services.worker``'s threads in this process while the app serves
            (``OPENSEG_WORKER_MODE=thread``; tests drive the app so).
        worker_process: A worker process started with the app and stopped with it (``openseg serve``'s default).
        lane_processes: Processes for the heavy request lanes, started with the app and stopped with it
            (``openseg serve``'s ``OPENSEG_API_PROCESSES``; without them every lane runs in this process's threads).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if run_worker and services.worker is not None:
            services.worker.start()
        if worker_process is not None:
            worker_process.start()
        if lane_processes is not None:
            await anyio.to_thread.run_sync(lane_processes.start)
            app.state.lane_processes = lane_processes
        try:
            yield
        finally:
            if lane_processes is not None:
                app.state.lane_processes = None
                await anyio.to_thread.run_sync(lane_processes.stop)
            if worker_process is not None:
                worker_process.stop()
            if run_worker and services.worker is not None:
                services.worker.stop()

    app = FastAPI(
        title="openseg",
        version=__version__,
        description="Customer segmentation speaking Adobe Experience Platform's Segmentation and Profile APIs.",
        lifespan=lifespan,
        redirect_slashes=False,
        openapi_tags=[{"name": EXTENSION_TAG, "description": "openseg's own routes: not in AEP's APIs"}],
    )
    app.state.services = services
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    # A request is matched against the routes in order, each match costing a few microseconds: the routes
    # called most, and whose latency is promised (streamed acknowledgements, edge calls, job status, profile
    # lookups), come first.
    for router in (collection.router, edge.router, jobs.router, access.router, sandboxes.router, catalog.router,
                   ingest.router, data_access.router, merge_policies.router, definitions.router, explain.router,
                   schedules.router, exports.router, query.router, preview.router, schema.router,
                   flowservice.router, ui.router):
        app.include_router(router)
    mark_extensions(app)
    # Within TrailingSlash: they see the path without one.
    app.add_middleware(collection.Acknowledgements)
    app.add_middleware(edge.EdgeCalls)
    app.add_middleware(TrailingSlash)
    return app
