"""Schedule bodies, after AEP's ``segmentation.yaml`` (``POST /config/schedules``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from openseg.api.models._base import Id, Name, RequestModel


class ScheduleRequest(RequestModel):
    """A schedule: a segment job (``batch_segmentation``: ``properties.segments``) or an export (``export``:
    ``properties`` is an export job's body) on a Quartz cron ``schedule``."""

    name: Name
    type: Id = Field(description="batch_segmentation or export")
    properties: dict[Id, Any]
    schedule: Id | None = Field(None, description="a Quartz cron expression, such as 0 0 1 * * ?")
    state: Id | None = Field(None, description="active or inactive")
