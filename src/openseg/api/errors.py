"""AEP's error bodies: gateway errors for auth, an RFC 7807-like body for everything else."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from openseg import failures
from openseg.api.profile_build import mark
from openseg.api.validation import bad_request
from openseg.errors import Forbidden, OpensegError, Unauthorized
from openseg.profiles.entities import ProfileNotFound

#: The service code in AEP's error ``type`` URLs, by path prefix.
_SERVICES = (
    ("/data/core/ups", "UPS"),
    ("/data/foundation/catalog", "CAT"),
    ("/data/foundation/import", "ING"),
    ("/data/foundation/export", "DA"),
    ("/data/foundation/query", "QS"),
    ("/data/foundation/sandbox-management", "SMS"),
)
_CODES = {400: "1001", 404: "1004", 409: "1009", 413: "1013", 422: "1001", 500: "1500", 405: "1005"}
_TITLES = {400: "Bad request", 404: "Not found", 405: "Method not allowed", 409: "Conflict", 500: "Internal error"}


class ErrorResponse(JSONResponse):
    """An error body escaped to ASCII: a detail quoting what the client sent (a lone surrogate, say) must
    still render, or the error handler itself would fail with a 500."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


def service_code(path: str) -> str:
    for prefix, code in _SERVICES:
        if path.startswith(prefix):
            return code
    return "OPENSEG"


def error_body(path: str, status: int, detail: str, report: dict[str, Any] | None = None,
               title: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"https://ns.adobe.com/aep/errors/{service_code(path)}-{_CODES.get(status, '1000')}-{status}",
        "title": title or _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if report:
        body["report"] = report
    return body


def error_response(request: Request, status: int, detail: str, report: dict[str, Any] | None = None,
                   title: str | None = None) -> JSONResponse:
    return ErrorResponse(error_body(request.url.path, status, detail, report, title), status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Unauthorized)
    async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
        return ErrorResponse({"error_code": exc.error_code, "message": exc.detail}, status_code=401)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return ErrorResponse({"error_code": exc.error_code, "message": exc.detail}, status_code=403)

    @app.exception_handler(OpensegError)
    async def _domain(request: Request, exc: OpensegError) -> JSONResponse:
        return error_response(request, exc.status, exc.detail, exc.report or None, exc.title)

    @app.exception_handler(ProfileNotFound)
    async def _no_profile(request: Request, exc: ProfileNotFound) -> JSONResponse:
        # A 404 read from a stale build may be a profile ingested since: say which build answered.
        response = error_response(request, exc.status, exc.detail, exc.report or None, exc.title)
        mark(response, exc.build.to_json() if exc.build is not None else None)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        # A declared parameter of the wrong type: AEP's 400 naming it, as the bodies' own errors do.
        error = bad_request(exc.errors())
        return error_response(request, error.status, error.detail, error.report, error.title)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route matches {request.method} {request.url.path}"
        return error_response(request, exc.status_code, detail)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        # A full disk is the operator's to fix, and nothing was kept of the request: 507, plainly said.
        if failures.is_disk_full(exc):
            return error_response(request, 507, failures.DISK_FULL_MESSAGE, {"code": failures.DISK_FULL},
                                  "Insufficient storage")
        return error_response(request, 500, f"internal error: {type(exc).__name__}")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:  # pragma: no cover - last resort
        return error_response(request, 500, f"internal error: {type(exc).__name__}")
