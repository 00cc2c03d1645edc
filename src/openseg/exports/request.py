"""An export request (UPS ``POST /export/jobs``), validated into a typed value the runner trusts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from openseg.catalog.validation import parse_rfc3339
from openseg.errors import BadRequest, NotFound
from openseg.exports.model import UNION_SCHEMA
from openseg.exports.ports import ExportLookups
from openseg.profiles.defaults import default_policy
from openseg.request_fields import optional_object
from openseg.scope import Scope, in_scope

STATUSES = ("realized", "existing", "exited")
DEFAULT_STATUS = ("realized", "existing")
PROFILE_SCHEMA_NAME = "_xdm.context.profile"


@dataclass(frozen=True)
class SegmentFilter:
    segment_id: str
    namespace: str
    statuses: tuple[str, ...]

    @property
    def is_ups(self) -> bool:
        return self.namespace.lower() == "ups"


@dataclass(frozen=True)
class ExportRequest:
    dataset_id: str
    merge_policy_id: str
    merge_policy_version: int
    fields: tuple[str, ...] = ()
    segments: tuple[SegmentFilter, ...] = ()
    qualified_from: datetime | None = None
    qualified_to: datetime | None = None
    from_ingest: datetime | None = None
    empty_profiles: bool = False
    event_fields: tuple[str, ...] | None = None
    events_from_ingest: datetime | None = None
    segment_per_batch: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False)


def _fields(value: object, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a comma-separated string of field paths", field=name)
    paths = tuple(p.strip() for p in value.split(",") if p.strip())
    for path in paths:
        if any(not part for part in path.split(".")):
            raise BadRequest(f"'{name}' has an invalid field path '{path}'", field=name)
    return paths


def _time(value: object, name: str) -> datetime | None:
    if value is None:
        return None
    parsed = parse_rfc3339(value)
    if parsed is None:
        raise BadRequest(f"'{name}' must be an RFC 3339 date-time such as 2019-09-01T00:00:00Z, not {value!r}",
                         field=name)
    return parsed


def _bool(value: object, name: str, default: bool) -> bool:
    if value is None:
        return default
    if not isinstance(value, bool):
        raise BadRequest(f"'{name}' must be true or false", field=name)
    return value


def validate(lookups: ExportLookups, scope: Scope, body: object) -> ExportRequest:
    """Check every field of the seed's table; errors name the field.

    Raises:
        BadRequest: Naming the field at fault (a destination, segment or merge policy that does not exist in
            the sandbox included).
    """
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    schema = body.get("schema")
    if not isinstance(schema, dict) or schema.get("name") != PROFILE_SCHEMA_NAME:
        raise BadRequest(f"'schema.name' is required and must be {PROFILE_SCHEMA_NAME}", field="schema.name")
    destination = body.get("destination")
    if not isinstance(destination, dict) or not isinstance(destination.get("datasetId"), str):
        raise BadRequest("'destination.datasetId' is required", field="destination.datasetId")
    dataset_id = destination["datasetId"]
    kind = lookups.datasets.kind(scope, dataset_id)
    if kind is None:
        raise BadRequest(f"'destination.datasetId': dataset '{dataset_id}' does not exist in this sandbox",
                         field="destination.datasetId")
    if kind != "union":
        raise BadRequest(f"'destination.datasetId': dataset '{dataset_id}' is not based on the profile union schema "
                         f"({UNION_SCHEMA})", field="destination.datasetId")
    filter_ = body.get("filter") or {}
    if not isinstance(filter_, dict):
        raise BadRequest("'filter' must be an object", field="filter")
    segments = _segments(lookups, scope, filter_.get("segments"))
    qualification = filter_.get("segmentQualificationTime") or {}
    if not isinstance(qualification, dict):
        raise BadRequest("'filter.segmentQualificationTime' must be an object", field="filter.segmentQualificationTime")
    additional = body.get("additionalFields") or {}
    event_list = additional.get("eventList") if isinstance(additional, dict) else None
    event_fields: tuple[str, ...] | None = None
    events_from: datetime | None = None
    if event_list is not None:
        if not isinstance(event_list, dict):
            raise BadRequest("'additionalFields.eventList' must be an object", field="additionalFields.eventList")
        event_fields = _fields(event_list.get("fields"), "additionalFields.eventList.fields")
        event_filter = optional_object(event_list, "filter", field="additionalFields.eventList.filter")
        events_from = _time(event_filter.get("fromIngestTimestamp"),
                            "additionalFields.eventList.filter.fromIngestTimestamp")
    policy_id, policy_version = _merge_policy(lookups, scope, body.get("mergePolicy"), segments)
    return ExportRequest(
        dataset_id=dataset_id, merge_policy_id=policy_id, merge_policy_version=policy_version,
        fields=_fields(body.get("fields"), "fields"), segments=segments,
        qualified_from=_time(qualification.get("startTime"), "filter.segmentQualificationTime.startTime"),
        qualified_to=_time(qualification.get("endTime"), "filter.segmentQualificationTime.endTime"),
        from_ingest=_time(filter_.get("fromIngestTimestamp"), "filter.fromIngestTimestamp"),
        empty_profiles=_bool(filter_.get("emptyProfiles"), "filter.emptyProfiles", False),
        event_fields=event_fields, events_from_ingest=events_from,
        segment_per_batch=_bool(destination.get("segmentPerBatch"), "destination.segmentPerBatch", False),
        raw=body,
    )


def _segments(lookups: ExportLookups, scope: Scope, value: object) -> tuple[SegmentFilter, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise BadRequest("'filter.segments' must be a list", field="filter.segments")
    filters = []
    for index, entry in enumerate(value):
        where = f"filter.segments[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("segmentId"), str) or not entry["segmentId"]:
            raise BadRequest(f"'{where}.segmentId' is required", field=f"{where}.segmentId")
        namespace = entry.get("segmentNs", "UPS")
        if not isinstance(namespace, str) or not namespace:
            raise BadRequest(f"'{where}.segmentNs' must be a string", field=f"{where}.segmentNs")
        statuses = entry.get("status", list(DEFAULT_STATUS))
        if not isinstance(statuses, list) or not statuses or any(s not in STATUSES for s in statuses):
            raise BadRequest(f"'{where}.status' must list some of {', '.join(STATUSES)}", field=f"{where}.status")
        segment = SegmentFilter(entry["segmentId"], namespace, tuple(dict.fromkeys(statuses)))
        if segment.is_ups:
            definition = lookups.segment_definitions.get(segment.segment_id)
            if definition is None or definition.sandbox_id != scope.sandbox_id:
                raise BadRequest(f"'{where}.segmentId': segment definition '{segment.segment_id}' does not exist "
                                 "in this sandbox", field=f"{where}.segmentId")
        filters.append(segment)
    return tuple(filters)


def _merge_policy(lookups: ExportLookups, scope: Scope, value: object,
                  segments: tuple[SegmentFilter, ...]) -> tuple[str, int]:
    """The request's policy; else the (single) policy of its UPS segments; else the sandbox default."""
    policies = lookups.merge_policies
    if value is not None:
        if not isinstance(value, dict) or not isinstance(value.get("id"), str):
            raise BadRequest("'mergePolicy.id' must be a string", field="mergePolicy.id")
        try:
            policy = in_scope(policies.get(value["id"]), scope, "merge policy", value["id"])
        except NotFound as exc:
            raise BadRequest(f"'mergePolicy.id': merge policy '{value['id']}' does not exist in this sandbox",
                             field="mergePolicy.id") from exc
        return policy.id, policy.version
    used = {lookups.segment_definitions.get(s.segment_id).merge_policy_id  # type: ignore[union-attr]
            for s in segments if s.is_ups}
    if len(used) > 1:
        raise BadRequest("the segments use different merge policies: set 'mergePolicy' to choose one",
                         field="mergePolicy")
    if used:
        policy_id = used.pop()
        policy = in_scope(policies.get(policy_id), scope, "merge policy", policy_id)
    else:
        policy = default_policy(policies, scope)
    return policy.id, policy.version
