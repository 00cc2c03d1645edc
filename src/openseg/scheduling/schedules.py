"""Schedules (UPS ``/config/schedules``): validation, the seed's guardrails, JSON Patch updates.

Each service function takes a fresh unit of work (``ports.SchedulingUnitOfWork``), runs in one
transaction of it and commits on success; an error leaves nothing written.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest, Conflict
from openseg.json_patch import apply_patch
from openseg.scheduling.cron import CronError, QuartzCron
from openseg.scheduling.model import Schedule
from openseg.scheduling.ports import SandboxScope, SchedulingUnitOfWork
from openseg.scope import in_scope

__all__ = [
    "MAX_MERGE_POLICIES",
    "PATCHABLE",
    "STATES",
    "TYPES",
    "check_policy_guardrail",
    "create_schedule",
    "delete_schedule",
    "get_schedule",
    "list_schedules",
    "parse_cron",
    "update_schedule",
]

TYPES = ("batch_segmentation", "export")
STATES = ("active", "inactive")
#: AEP: scheduled evaluation is available in sandboxes with at most 5 merge policies.
MAX_MERGE_POLICIES = 5
PATCHABLE = ("/state", "/schedule", "/name", "/properties")


def parse_cron(text: object) -> QuartzCron:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'schedule' is required: a Quartz cron expression such as \"0 0 1 * * ?\"", field="schedule")
    try:
        cron = QuartzCron.parse(text)
        cron.assert_at_most_daily()
    except CronError as exc:
        raise BadRequest(f"'schedule': {exc}", field="schedule") from exc
    return cron


def _validate(uow: SchedulingUnitOfWork, scope: SandboxScope, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' is required and must be a non-empty string", field="name")
    kind = body.get("type")
    if kind not in TYPES:
        raise BadRequest(f"'type' must be one of {', '.join(TYPES)}", field="type")
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise BadRequest("'properties' is required and must be an object", field="properties")
    if kind == "batch_segmentation":
        segments = properties.get("segments")
        if not isinstance(segments, list) or not segments or not all(isinstance(s, str) for s in segments):
            raise BadRequest("'properties.segments' must list segment ids, or [\"*\"] for all",
                             field="properties.segments")
        if "*" not in segments:
            known = uow.segment_definitions.existing_ids(scope.sandbox_id, segments)
            unknown = [s for s in segments if s not in known]
            if unknown:
                raise BadRequest(f"'properties.segments' names unknown segment definitions: {', '.join(unknown)}",
                                 field="properties.segments")
    else:
        uow.jobs.check_export(scope, properties)
    cron = parse_cron(body.get("schedule"))
    state = body.get("state", "inactive")
    if state not in STATES:
        raise BadRequest("'state' must be active or inactive", field="state")
    if state == "active":
        check_policy_guardrail(uow, scope.sandbox_id)
    return {"name": name.strip(), "type": kind, "properties": properties, "schedule": cron.text, "state": state}


def check_policy_guardrail(uow: SchedulingUnitOfWork, sandbox_id: str) -> None:
    """Refuse scheduled evaluation in a sandbox with more merge policies than AEP allows.

    Raises:
        BadRequest: With the guardrail, its limit and the sandbox's count in the report.
    """
    policies = uow.merge_policies.count(sandbox_id)
    if policies > MAX_MERGE_POLICIES:
        raise BadRequest(
            f"scheduled evaluation is not available in a sandbox with more than {MAX_MERGE_POLICIES} merge "
            f"policies; this sandbox has {policies}", field="state",
            report={"guardrail": "maxMergePoliciesForScheduledEvaluation", "limit": MAX_MERGE_POLICIES,
                    "mergePolicies": policies})


def create_schedule(uow: SchedulingUnitOfWork, scope: SandboxScope, body: object) -> Schedule:
    """Create the sandbox's schedule of a type (UPS ``POST /config/schedules``).

    Raises:
        BadRequest: The body is invalid, or activating it would break a guardrail.
        Conflict: The sandbox already has a schedule of this type.
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    with uow:
        values = _validate(uow, scope, body)
        existing = uow.schedules.of_type(scope.sandbox_id, values["type"])
        if existing is not None:
            raise Conflict(f"this sandbox already has a {values['type']} schedule: '{existing.id}' ({existing.name}); "
                           "update or delete it instead", report={"existingScheduleId": existing.id})
        now = now_ms()
        schedule = Schedule(id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id, effective_from=now,
                            created=now, updated=now, **values)
        schedule = replace(schedule, next_run=schedule.next_run_after(now))
        uow.schedules.add(schedule)
        uow.commit()
    return schedule


def _get(uow: SchedulingUnitOfWork, scope: SandboxScope, schedule_id: str) -> Schedule:
    return in_scope(uow.schedules.get(schedule_id), scope, "schedule", schedule_id)


def get_schedule(uow: SchedulingUnitOfWork, scope: SandboxScope, schedule_id: str) -> Schedule:
    """The schedule with this id in the scope.

    Raises:
        NotFound: No such schedule in this org and sandbox.
    """
    with uow:
        return _get(uow, scope, schedule_id)


def list_schedules(uow: SchedulingUnitOfWork, scope: SandboxScope, *, start: int,
                   limit: int) -> tuple[list[Schedule], int]:
    """One page of the sandbox's schedules, oldest first, and how many there are in all."""
    with uow:
        return uow.schedules.page(scope.sandbox_id, start=start, limit=limit)


def update_schedule(uow: SchedulingUnitOfWork, scope: SandboxScope, schedule_id: str, operations: Any) -> Schedule:
    """Apply a JSON Patch to the name, state, expression or properties of a schedule.

    Raises:
        NotFound: No such schedule in this org and sandbox.
        BadRequest: The patch touches another path, or its result is invalid.
    """
    with uow:
        schedule = _get(uow, scope, schedule_id)
        current = {"name": schedule.name, "type": schedule.type, "properties": schedule.properties,
                   "schedule": schedule.schedule, "state": schedule.state}
        patched = apply_patch(current, operations, allowed=PATCHABLE)
        values = _validate(uow, scope, patched)
        now = now_ms()
        if values["schedule"] != schedule.schedule or (values["state"] == "active" and schedule.state != "active"):
            # A new time or a re-activation owes no fire for times already past.
            schedule = replace(schedule, effective_from=now)
        schedule = replace(schedule, **values, updated=now)
        schedule = replace(schedule, next_run=schedule.next_run_after(now))
        uow.schedules.update(schedule)
        uow.commit()
    return schedule


def delete_schedule(uow: SchedulingUnitOfWork, scope: SandboxScope, schedule_id: str) -> None:
    """Delete a schedule (the jobs it started stay).

    Raises:
        NotFound: No such schedule in this org and sandbox.
    """
    with uow:
        uow.schedules.remove(_get(uow, scope, schedule_id).id)
        uow.commit()
