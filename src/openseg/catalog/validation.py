"""XDM record validation at ingestion: what a profile fragment and an ExperienceEvent must carry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from openseg.xdm.schema import Schema
from openseg.xdm.values import arrow_misfits, conform, parse_date_time

PROFILE = "profile"
EVENT = "event"
UNION = "union"


@dataclass(frozen=True)
class RecordError:
    """One problem with one record; ``record`` is 1-based within its file."""

    file: str
    record: int
    field: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "code": "ING-1104-400",
            "description": f"record {self.record} of {self.file}: field '{self.field}' {self.reason}",
            "file": self.file,
            "record": self.record,
            "field": self.field,
            "reason": self.reason,
            "rows": [str(self.record)],  # Catalog's errors[].rows: strings ("3" or a range "3-5")
        }


def parse_rfc3339(value: object) -> datetime | None:
    """An RFC 3339 date-time with an explicit offset (``Z`` or ``±hh:mm``), as UTC; None if it is not one."""
    return parse_date_time(value)


def _identity_map_errors(value: object) -> list[tuple[str, str]]:
    if value is None:
        return [("identityMap", "is required: every XDM record needs at least one identity")]
    if not isinstance(value, dict):
        return [("identityMap", "must be an object of namespace -> list of identities")]
    problems: list[tuple[str, str]] = []
    count = 0
    for namespace, identities in value.items():
        where = f"identityMap.{namespace}"
        if not namespace.strip():
            problems.append(("identityMap", "has an empty namespace"))
            continue
        if not isinstance(identities, list) or not identities:
            problems.append((where, "must be a non-empty list of identities"))
            continue
        for i, identity in enumerate(identities):
            here = f"{where}[{i}]"
            if not isinstance(identity, dict):
                problems.append((here, "must be an object with an 'id'"))
                continue
            ident = identity.get("id")
            if not isinstance(ident, str) or not ident.strip():
                problems.append((f"{here}.id", "must be a non-empty string"))
            else:
                count += 1
            primary = identity.get("primary")
            if primary is not None and not isinstance(primary, bool):
                problems.append((f"{here}.primary", "must be true or false"))
    if not problems and count == 0:
        problems.append(("identityMap", "holds no identity"))
    return problems


def validate_record(record: object, kind: str) -> list[tuple[str, str]]:
    """Problems of one record as ``(field, reason)`` pairs; empty when the record is valid."""
    if not isinstance(record, dict):
        return [("(record)", "must be a JSON object")]
    problems = _identity_map_errors(record.get("identityMap"))
    if kind == EVENT:
        ident = record.get("_id")
        if not isinstance(ident, str) or not ident.strip():
            problems.append(("_id", "is required on an ExperienceEvent and must be a non-empty string"))
        timestamp = record.get("timestamp")
        if timestamp is None:
            problems.append(("timestamp", "is required on an ExperienceEvent (RFC 3339 date-time)"))
        elif parse_rfc3339(timestamp) is None:
            problems.append(("timestamp", f"must be an RFC 3339 date-time with an offset, not {timestamp!r}"))
        event_type = record.get("eventType")
        if not isinstance(event_type, str) or not event_type.strip():
            problems.append(("eventType", "is required on an ExperienceEvent and must be a non-empty string"))
    return problems


# Fields validate_record checks itself, per kind (conform would report their problems a second time).
_CHECKED = {PROFILE: frozenset({"identityMap"}), EVENT: frozenset({"identityMap", "_id", "timestamp", "eventType"})}


def typed_record(record: dict[str, Any], kind: str) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The record with its standard XDM values typed (``date`` and ``date-time`` text parsed), and the
    values that do not fit their standard field as ``(field, reason)`` pairs.

    Fields the standard does not define (``_tenant.*`` and any other) are kept as they are.
    """
    standard = Schema.standard()
    return conform(record, standard.event if kind == EVENT else standard.profile, skip=_CHECKED[kind])


def parquet_misfits(schema: pa.Schema, kind: str) -> list[tuple[str, str]]:
    """The columns of an uploaded Parquet file whose type cannot hold their standard XDM field's values.

    Openseg stores what a Parquet upload holds as it is, so a standard date kept as text would compare as
    text: such a file is refused, naming the field, rather than read wrongly (JSON dates are parsed).
    """
    standard = Schema.standard()
    return arrow_misfits(schema, standard.event if kind == EVENT else standard.profile, skip=_CHECKED[kind])
