"""Schedules (UPS ``/config/schedules``): validation, the seed's guardrails, JSON Patch updates."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openseg.catalog.service import Scope
from openseg.clock import ms_to_datetime, new_uuid, now_ms
from openseg.errors import BadRequest, Conflict
from openseg.json_patch import apply_patch
from openseg.profiles.policies import count_policies
from openseg.scheduling.cron import CronError, QuartzCron, frequency
from openseg.scheduling.timing import plan_fire
from openseg.store.models import Schedule, SegmentDefinition

TYPES = ("batch_segmentation", "export")
STATES = ("active", "inactive")
#: AEP: scheduled evaluation is available in sandboxes with at most 5 merge policies.
MAX_MERGE_POLICIES = 5
PATCHABLE = ("/state", "/schedule", "/name", "/properties")

#: Validates an export request (the export issue supplies it); raises BadRequest naming the field.
ExportValidator = Callable[[Session, Scope, Any], None]


def parse_cron(text: object) -> QuartzCron:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest("'schedule' is required: a Quartz cron expression such as \"0 0 1 * * ?\"", field="schedule")
    try:
        cron = QuartzCron.parse(text)
        cron.assert_at_most_daily()
    except CronError as exc:
        raise BadRequest(f"'schedule': {exc}", field="schedule") from exc
    return cron


def _validate(session: Session, scope: Scope, body: dict[str, Any], export_validator: ExportValidator | None) -> dict[str, Any]:
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
            known = set(session.scalars(select(SegmentDefinition.id).where(
                SegmentDefinition.sandbox_id == scope.sandbox_id, SegmentDefinition.id.in_(segments))))
            unknown = [s for s in segments if s not in known]
            if unknown:
                raise BadRequest(f"'properties.segments' names unknown segment definitions: {', '.join(unknown)}",
                                 field="properties.segments")
    elif export_validator is not None:
        export_validator(session, scope, properties)
    cron = parse_cron(body.get("schedule"))
    state = body.get("state", "inactive")
    if state not in STATES:
        raise BadRequest("'state' must be active or inactive", field="state")
    if state == "active":
        check_policy_guardrail(session, scope)
    return {"name": name.strip(), "type": kind, "properties": properties, "schedule": cron.text, "state": state}


def check_policy_guardrail(session: Session, scope: Scope) -> None:
    policies = count_policies(session, scope.sandbox_id)
    if policies > MAX_MERGE_POLICIES:
        raise BadRequest(
            f"scheduled evaluation is not available in a sandbox with more than {MAX_MERGE_POLICIES} merge "
            f"policies; this sandbox has {policies}", field="state",
            report={"guardrail": "maxMergePoliciesForScheduledEvaluation", "limit": MAX_MERGE_POLICIES,
                    "mergePolicies": policies})


def create_schedule(session: Session, scope: Scope, body: object,
                    export_validator: ExportValidator | None = None) -> Schedule:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    values = _validate(session, scope, body, export_validator)
    existing = session.scalars(select(Schedule).where(Schedule.sandbox_id == scope.sandbox_id,
                                                      Schedule.type == values["type"])).first()
    if existing is not None:
        raise Conflict(f"this sandbox already has a {values['type']} schedule: '{existing.id}' ({existing.name}); "
                       "update or delete it instead", report={"existingScheduleId": existing.id})
    now = now_ms()
    schedule = Schedule(id=new_uuid(), org_id=scope.org_id, sandbox_id=scope.sandbox_id, effective_from=now,
                        created=now, updated=now, **values)
    schedule.next_run = _next_run(schedule, now)
    session.add(schedule)
    session.flush()
    return schedule


def get_schedule(session: Session, scope: Scope, schedule_id: str) -> Schedule:
    return scope.get(session, Schedule, schedule_id, "schedule")


def list_schedules(session: Session, scope: Scope, *, start: int, limit: int) -> tuple[list[Schedule], int]:
    query = select(Schedule).where(Schedule.sandbox_id == scope.sandbox_id)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    return list(session.scalars(query.order_by(Schedule.created, Schedule.id).offset(start).limit(limit))), total


def update_schedule(session: Session, scope: Scope, schedule_id: str, operations: Any,
                    export_validator: ExportValidator | None = None) -> Schedule:
    schedule = get_schedule(session, scope, schedule_id)
    current = {"name": schedule.name, "type": schedule.type, "properties": schedule.properties,
               "schedule": schedule.schedule, "state": schedule.state}
    patched = apply_patch(current, operations, allowed=PATCHABLE)
    values = _validate(session, scope, patched, export_validator)
    now = now_ms()
    if values["schedule"] != schedule.schedule or (values["state"] == "active" and schedule.state != "active"):
        # A new time or a re-activation owes no fire for times already past.
        schedule.effective_from = now
    for key, value in values.items():
        setattr(schedule, key, value)
    schedule.updated = now
    schedule.next_run = _next_run(schedule, now)
    return schedule


def delete_schedule(session: Session, scope: Scope, schedule_id: str) -> None:
    session.delete(get_schedule(session, scope, schedule_id))


def _next_run(schedule: Schedule, now: int) -> int | None:
    if schedule.state != "active":
        return None
    following = QuartzCron.parse(schedule.schedule).next_fire_after(ms_to_datetime(now))
    return _ms(following)


def _ms(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def due_fire(schedule: Schedule, now: datetime) -> tuple[datetime | None, datetime | None]:
    """(the fire owed now, the next run) for an active schedule."""
    plan = plan_fire(QuartzCron.parse(schedule.schedule), created_at=ms_to_datetime(schedule.effective_from),
                     last_fire=ms_to_datetime(schedule.last_fire) if schedule.last_fire else None, now=now)
    return plan.due, plan.next_run


def schedule_json(schedule: Schedule, sandbox: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": schedule.id,
        "imsOrgId": schedule.org_id,
        "sandbox": sandbox,
        "name": schedule.name,
        "state": schedule.state,
        "type": schedule.type,
        "schedule": schedule.schedule,
        "properties": schedule.properties,
        "createEpoch": schedule.created // 1000,
        "updateEpoch": schedule.updated // 1000,
        "frequency": frequency(schedule.schedule),
        "lastRun": schedule.last_run,
        "lastJobId": schedule.last_job_id,
        "nextRun": schedule.next_run,
    }
