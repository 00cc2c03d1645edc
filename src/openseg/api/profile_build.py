"""``x-openseg-profile-build``: which build of the profile store a response was read from.

Requests never build a store (docs/architecture.md, "Reads never build"); they read the last complete
build, which may be stale while a newer one is queued or running. AEP's bodies have no place for that, so
every response read from a store carries this header: ``current; built=<RFC 3339>`` or
``stale; built=<RFC 3339>`` (``built`` is left out when the build time is unknown). Bodies that are
openseg's own (preview, estimate, membership history) also say it as ``openseg:profileBuild``.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

HEADER = "x-openseg-profile-build"


def header_value(build: dict[str, Any]) -> str:
    """The header for a build as ``ServingStore.to_json`` reports it."""
    value = "stale" if build["stale"] else "current"
    return f"{value}; built={build['builtAt']}" if build.get("builtAt") else value


def mark(response: Response, build: dict[str, Any] | None) -> None:
    """Say on ``response`` which build it was read from (nothing for a response read from none)."""
    if build is not None:
        response.headers[HEADER] = header_value(build)
