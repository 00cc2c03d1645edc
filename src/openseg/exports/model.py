"""Export jobs as the export services see them: plain values, not database rows.

Why values of their own rather than ``store.models.ExportJob``: that class imports SQLAlchemy, which the
``exports-no-infrastructure`` contract forbids even for type hints (see ``scheduling/model.py``). Fields are
the ``export_jobs`` columns, same names; JSON columns hold plain lists and dictionaries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["UNION_SCHEMA", "ExportJob"]

#: The schema of the datasets exports write (``catalog.service`` classifies a dataset on it as ``union``).
UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"


@dataclass
class ExportJob:
    """One export job (``/export/jobs``): the validated request, where it writes, and how it went.

    Unlike the other domain values this one is not frozen: the job lifecycle (``openseg.job_lifecycle``)
    moves a job through its states in place. Nothing is written by that: ``ExportJobRepository.update``
    writes the job back, explicitly, in its unit of work. ``destination`` holds the batch reserved for the
    export (``batchId``) or one per segment (``batches``).
    """

    id: int
    org_id: str
    sandbox_id: str
    request: dict[str, Any]
    status: str
    request_id: str
    errors: list[Any]
    metrics: dict[str, Any]
    destination: dict[str, Any]
    origin: str
    created: int
    updated: int
