"""Sandbox and streaming connection bodies (Sandbox Management and Flow Service APIs)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, StringConstraints

from openseg.api.models._base import Id, Name, RequestModel, Text


class SandboxRequest(RequestModel):
    """``POST /sandboxes``: a sandbox of the caller's org."""

    name: Annotated[str, StringConstraints(max_length=64)] = Field(
        description="lower-case letters, digits and hyphens, starting with a letter or digit")
    title: Name | None = None
    type: Id | None = Field(None, description="development or production")


class ConnectionSpec(RequestModel):
    id: Id
    version: Id | None = None


class ConnectionAuth(RequestModel):
    specName: Id | None = None
    params: dict[Id, Any] = Field(description="sourceId, dataType (xdm), name, authenticationRequired, datasetId")


class ConnectionRequest(RequestModel):
    """``POST /flowservice/connections``: an HTTP API streaming connection (an inlet)."""

    name: Name
    description: Text | None = None
    providerId: Id | None = None
    connectionSpec: ConnectionSpec
    auth: ConnectionAuth
