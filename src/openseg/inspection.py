"""Inspecting a segment without changing it: why one profile is (not) in it, and what a changed expression
would do to its membership.

The services behind ``GET .../definitions/{id}/explain``, ``POST .../definitions/{id}/dryRun`` and
``openseg explain``. They read the metadata store, the segment's profile store and its membership, and hand
plain values to the domain (:mod:`openseg.segmentation.explain`, :mod:`openseg.segmentation.dry_run`), which
imports no infrastructure. Neither builds a profile store: without a complete build they answer 409.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import pyarrow.parquet as pq

from openseg.arrow_rows import python_rows
from openseg.catalog.read_only_sql import json_value
from openseg.clock import ms_to_datetime, now_ms, rfc3339
from openseg.errors import BadRequest, NotFound
from openseg.pql import parse
from openseg.profiles import lookup, policies
from openseg.profiles.service import sandbox_schema, serving_store
from openseg.profiles.store import PROFILES_FILE, event_files
from openseg.scope import Scope
from openseg.segmentation import definitions, membership
from openseg.segmentation.dry_run import dry_run
from openseg.segmentation.explain import Condition, Explainer, LastEvaluation, disagreement

if TYPE_CHECKING:
    from openseg.container import Services

DEFINITIONS = "/data/core/ups/segment/definitions"


@dataclass(frozen=True)
class _Segment:
    """A segment definition with the profile store and membership of its merge policy."""

    id: str
    pql: str
    updated_at: datetime
    store: Path
    built_at: datetime | None
    members: membership.MembershipStore
    state: membership.State | None


def _segment(services: Services, scope: Scope, segment_id: str) -> _Segment:
    """The definition (404 when unknown) and the last complete build of its merge policy's store (409 when
    there is none: a request never builds one)."""
    definition = definitions.get_definition(services.uow(), scope, segment_id)
    policy_id, pql, updated = definition.merge_policy_id, definition.pql, definition.updated
    policy, record = policies.read_policy(services.uow(), scope, policy_id)
    pointer = record.membership_path if record else None
    # The last complete build (a stale one queues a build; none at all answers 409 and queues one).
    build = serving_store(services, scope, policy)
    members = membership.store_for(services.settings.home, scope.sandbox_id, policy_id)
    return _Segment(segment_id, pql, ms_to_datetime(updated), build.path, build.built_at, members,
                    members.state(pointer))


# -------------------------------------------------------------------------------------------- explain


def explain_segment(services: Services, scope: Scope, segment_id: str, namespace: str, identity: str
                    ) -> dict[str, Any]:
    """Why the profile holding ``namespace:identity`` is or is not in the segment (contract.md, "Explain").

    The expression is evaluated now, condition by condition, over the profile as the segment's jobs read
    it (its row of the profile store, all its events, its membership of other segments), and set beside
    the profile's membership from the last job; where the two differ, ``reason`` says why.

    Raises:
        NotFound: An unknown segment, or no profile has the identity.
        Conflict: The segment's merge policy has no profile store yet.
    """
    segment = _segment(services, scope, segment_id)
    profile_id = lookup.resolve_profile_id(segment.store, namespace, identity, engine=services.reader())
    if profile_id is None:
        raise NotFound(f"no profile has identity {namespace}:{identity}",
                       report={"entityId": identity, "entityIdNS": namespace})
    pairs = segment.members.lookup(segment.state, [profile_id])[profile_id]
    ups = {s: {"status": p.status, "lastQualificationTime": p.last_qualification_time} for s, p in pairs.items()}
    # The profile as a job reads it: inSegment reads the membership store, not an ingested segmentMembership.
    profile = {**_profile_row(segment.store, profile_id), "segmentMembership": {"ups": ups}}
    as_of = ms_to_datetime(now_ms())
    expr = parse(segment.pql)
    explanation = Explainer(expr, as_of).explain(profile, _profile_events(segment.store, profile_id))
    pair = pairs.get(segment_id)
    bits = segment.state.segments if segment.state is not None else {}

    def evaluated_at(evaluated: str) -> datetime | None:
        entry = bits.get(evaluated)
        return entry.evaluated_at if entry is not None else None

    last = LastEvaluation(
        evaluated_at=evaluated_at(segment_id), definition_updated_at=segment.updated_at,
        store_built_at=segment.built_at,
        references_evaluated_at={c.segment_id: evaluated_at(c.segment_id) for c in explanation.walk()
                                 if c.segment_id is not None})
    reason = disagreement(expr, explanation.value, pair is not None and pair.is_in, last, as_of)
    entity = {"entityId": identity, "entityIdNS": namespace}
    return {
        "segmentId": segment_id,
        "profileId": profile_id,
        "asOf": rfc3339(as_of),
        "qualifies": explanation.value,
        "membership": None if pair is None else {"status": pair.status,
                                                 "lastQualificationTime": json_value(pair.last_qualification_time)},
        "agreesWithMembership": reason is None,
        "reason": reason,
        "explanation": _condition_json(explanation, entity),
    }


def _condition_json(condition: Condition, entity: dict[str, str]) -> dict[str, Any]:
    node: dict[str, Any] = {"pql": condition.pql, "description": condition.description, "value": condition.value}
    if condition.has_found:
        node["found"] = json_value(condition.found)
    if condition.events is not None:
        node["events"] = {"matched": condition.events.matched, "sample": list(condition.events.sample)}
    if condition.segment_id is not None:
        node["segmentId"] = condition.segment_id
        node["_links"] = {"explanation": {
            "href": f"{DEFINITIONS}/{condition.segment_id}/explain?{urlencode(entity)}"}}
    node["children"] = [_condition_json(child, entity) for child in condition.children]
    return node


def _profile_row(store: Path, profile_id: str) -> dict[str, Any]:
    """The profile's row of ``profiles.parquet``: what segment jobs evaluate (under ``identityGraph: none``
    ``/access/entities`` shows a merge of the fragments carrying the identity instead)."""
    rows = _rows(store / PROFILES_FILE, profile_id)
    if not rows:  # resolved a moment ago in the same build
        raise NotFound(f"profile '{profile_id}' is not in the profile store")
    return rows[0]


def _profile_events(store: Path, profile_id: str) -> list[dict[str, Any]]:
    """Every event of the profile, oldest first (ties by ``_id``), as ``events.parquet`` holds them."""
    events = [event for path in event_files(store) for event in _rows(path, profile_id)]
    return sorted(events, key=lambda e: (e.get("timestamp") is None, e.get("timestamp"), e.get("_id") or ""))


def _rows(path: Path, profile_id: str) -> list[dict[str, Any]]:
    # Both files are sorted by _profile_id: the filter reads only the row groups that can hold it.
    table = pq.read_table(path, filters=[("_profile_id", "=", profile_id)])
    return python_rows(table)


# -------------------------------------------------------------------------------------------- dry run


def dry_run_segment(services: Services, scope: Scope, segment_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """What saving ``body["expression"]`` (the current expression when absent) would do to the segment's
    membership now: would enter, exit and stay, with samples (contract.md, "Dry run"). Nothing is written.

    Raises:
        BadRequest: An unknown field, or an expression a PATCH of the definition would refuse.
        NotFound: An unknown segment.
        Conflict: The segment's merge policy has no profile store yet.
    """
    unknown = sorted(set(body) - {"expression"})
    if unknown:
        raise BadRequest(f"unknown field '{unknown[0]}': a dry run takes only 'expression'", field=unknown[0])
    proposed = None
    if "expression" in body:  # refused as a PATCH would refuse it; an unknown segment is a 404 whatever the body
        proposed = definitions.check_expression(services.uow(), scope, segment_id, body["expression"],
                                                lambda: sandbox_schema(services, scope)).expr
    segment = _segment(services, scope, segment_id)
    expr = proposed if proposed is not None else parse(segment.pql)
    as_of = ms_to_datetime(now_ms())
    result = dry_run(services.engine(), segment.store, segment_id, expr, as_of, segment.members, segment.state)
    return {
        "segmentId": segment_id,
        "asOf": rfc3339(as_of),
        "current": result.current,
        "proposed": result.proposed,
        "wouldEnter": result.would_enter,
        "wouldExit": result.would_exit,
        "wouldStay": result.would_stay,
        "samples": {"enter": list(result.enter), "exit": list(result.exit)},
    }
