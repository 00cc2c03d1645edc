"""Assertions on AEP's response shapes, used by every API error test."""

from __future__ import annotations

from typing import Any


def assert_aep_error(response: Any, status: int, *, detail_contains: str = "") -> dict[str, Any]:
    """AEP's RFC 7807-like error body: type, title, status, detail (naming the problem)."""
    assert response.status_code == status, response.text
    # RFC 7807's own media type is the Edge Network's (``/ee/v2``, help/server-api/error-handling.md).
    assert response.headers["content-type"].startswith(("application/json", "application/problem+json"))
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail"}, body
    assert body["status"] == status
    assert body["type"].startswith("https://ns.adobe.com/aep/errors/") and body["type"].endswith(f"-{status}")
    assert detail_contains in body["detail"], body["detail"]
    return body


def assert_gateway_error(response: Any, status: int, error_code: str) -> None:
    """The API gateway's auth error body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == error_code
    assert body["message"]
