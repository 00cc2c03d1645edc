"""The FastAPI application: AEP paths, AEP error bodies, the in-process worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from openseg import __version__
from openseg.api import (
    access,
    catalog,
    data_access,
    definitions,
    explain,
    exports,
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
from openseg.services import Services


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


def create_app(services: Services, *, run_worker: bool = True) -> FastAPI:
    """Build the API over ``services``; with ``run_worker`` the worker thread runs while the app serves."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if run_worker and services.worker is not None:
            services.worker.start()
        try:
            yield
        finally:
            if run_worker and services.worker is not None:
                services.worker.stop()

    app = FastAPI(
        title="openseg",
        version=__version__,
        description="Customer segmentation speaking Adobe Experience Platform's Segmentation and Profile APIs.",
        lifespan=lifespan,
        redirect_slashes=False,
    )
    app.state.services = services
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    for router in (sandboxes.router, catalog.router, ingest.router, data_access.router, merge_policies.router,
                   definitions.router, explain.router, jobs.router, schedules.router, exports.router,
                   query.router, preview.router, access.router, schema.router, ui.router):
        app.include_router(router)
    app.add_middleware(TrailingSlash)
    return app
