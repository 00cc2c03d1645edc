"""Segment definitions and segment jobs as the segmentation services see them: plain values, not rows.

Why values of their own rather than the ORM classes of ``store/models.py``: those import SQLAlchemy,
which the ``segmentation-no-infrastructure`` contract forbids even for type hints, and a frozen value
keeps writes explicit (``dataclasses.replace``, then the repository's ``update``), so nothing is written
by touching an attribute and an in-memory fake is a dictionary (see ``scheduling/model.py``). Fields are
the store's columns, same names; JSON columns hold plain lists and dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Preview", "SegmentDefinition", "SegmentJob"]


@dataclass(frozen=True)
class SegmentDefinition:
    """One UPS segment definition (``/segment/definitions``) at its current version.

    ``expression`` is AEP's ``{type, format, value}`` as given; ``pql`` the same expression as PQL text.
    ``dependencies`` are the ids it reads with ``inSegment``. Times are milliseconds since the epoch.
    """

    id: str
    org_id: str
    sandbox_id: str
    name: str
    description: str | None
    expression: dict[str, Any] = field(hash=False)
    pql: str
    schema_name: str
    merge_policy_id: str
    ttl_in_days: int
    evaluation_info: dict[str, Any] = field(hash=False)
    labels: list[Any] = field(hash=False)
    dependencies: list[Any] = field(hash=False)
    lifecycle_state: str
    version: int
    created: int
    updated: int
    #: AEP's ``payloadSchema``: a string the definition carries and shows, which openseg does not interpret.
    payload_schema: str | None = None
    #: openseg's ``openseg:streamingOptIn``: streaming segmentation evaluates the definition whatever its shape,
    #: where ``evaluation_info`` (AEP's answer) says it would not stream.
    streaming_opt_in: bool = False


@dataclass(frozen=True)
class SegmentJob:
    """One segment job (``/segment/jobs``): the definitions it evaluates, as they were when it was created.

    ``segments`` holds AEP's entries (``segmentId`` and the definition's version, expression and merge
    policy); ``errors`` and ``metrics`` are what the worker reported.
    """

    id: str
    org_id: str
    sandbox_id: str
    compute_job_id: int
    request_id: str
    status: str
    segments: list[Any] = field(hash=False)
    errors: list[Any] = field(hash=False)
    metrics: dict[str, Any] = field(hash=False)
    origin: str
    created: int
    updated: int


@dataclass(frozen=True)
class Preview:
    """A segment preview and its estimate (UPS ``/preview``, ``/estimate``): the request, and the counts and
    sample profiles it found (``result``)."""

    id: str
    org_id: str
    sandbox_id: str
    request: dict[str, Any] = field(hash=False)
    state: str
    result: dict[str, Any] = field(hash=False)
    created: int
    updated: int
