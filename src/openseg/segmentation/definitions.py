"""Segment definitions (UPS ``/segment/definitions``): PQL checked at the door, versions, dependencies."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest, Conflict, NotFound
from openseg.pql import ast, parse
from openseg.pql.capabilities import evaluation_info, is_profile_only
from openseg.pql.checker import check
from openseg.pql.errors import PqlError
from openseg.profiles import policies
from openseg.request_fields import optional_object, optional_string, string_list
from openseg.scope import Scope
from openseg.segmentation.expressions import pql_error, read_expression
from openseg.store.models import SegmentDefinition, SegmentDefinitionVersion
from openseg.xdm.schema import Schema

PROFILE_SCHEMA_NAME = "_xdm.context.profile"
SchemaSource = Callable[[], Schema]

#: The store's columns: a 32-bit ``ttl_in_days`` and a 16-character ``lifecycle_state``.
MAX_TTL_DAYS = 2**31 - 1
MAX_LIFECYCLE_STATE = 16


@dataclass(frozen=True)
class Analysis:
    """What the service learns from an expression before storing it."""

    text: str
    expr: ast.Expr
    references: tuple[str, ...]


def analyze(expression: object, schema: Schema, *, field: str = "expression") -> Analysis:
    """Read an AEP ``expression`` object ``{type: PQL, format, value}`` in either format and check it."""
    read = read_expression(expression, field)
    try:
        check(read.expr, schema, source=read.text)
    except PqlError as error:
        raise pql_error(error.with_source(read.text), f"{field}.value",
                        as_text=read.text if read.from_tree else None) from error
    expr = read.expr
    references = tuple(
        node.segment_id for node in expr.walk()
        if isinstance(node, ast.InSegment) and node.namespace.lower() == "ups"
    )
    return Analysis(text=read.text, expr=expr, references=tuple(dict.fromkeys(references)))


def _definitions(session: Session, scope: Scope) -> list[SegmentDefinition]:
    return list(session.scalars(select(SegmentDefinition).where(SegmentDefinition.sandbox_id == scope.sandbox_id)))


def _check_references(session: Session, scope: Scope, definition_id: str, references: tuple[str, ...]) -> None:
    """Referenced segments must exist in the sandbox, and the dependency graph must stay acyclic."""
    existing = {d.id: d for d in _definitions(session, scope)}
    unknown = [r for r in references if r not in existing and r != definition_id]
    if unknown:
        raise BadRequest(f"inSegment refers to segment definitions that do not exist: {', '.join(unknown)}",
                         field="expression.value", report={"unknownSegments": unknown})
    graph = {d.id: list(d.dependencies or []) for d in existing.values()}
    graph[definition_id] = list(references)
    path = _find_cycle(graph, definition_id)
    if path:
        names = " -> ".join(path)
        raise BadRequest(f"inSegment creates a cycle: {names}", field="expression.value", report={"cycle": path})


def _find_cycle(graph: dict[str, list[str]], start: str) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    while stack:
        node, path = stack.pop()
        for child in graph.get(node, []):
            if child == start:
                return path + [start]
            if child not in path:
                stack.append((child, path + [child]))
    return None


def _eligibility(session: Session, scope: Scope, expr: ast.Expr, policy_id: str) -> dict[str, Any]:
    """AEP's evaluation types for ``expr`` under the merge policy, knowing which referenced segments are
    profile only (``inSegment`` of those may stream and go to the edge beside an event)."""
    by_id = {d.id: d for d in _definitions(session, scope)}
    known: dict[str, bool] = {}

    def profile_only(segment_id: str) -> bool:
        if segment_id not in known:
            known[segment_id] = False  # the dependency graph is acyclic; this only guards the recursion
            definition = by_id.get(segment_id)
            known[segment_id] = definition is not None and is_profile_only(parse(definition.pql), profile_only)
        return known[segment_id]

    policy = policies.get_policy(session, scope, policy_id)
    return evaluation_info(expr, profile_only=profile_only, active_on_edge=policy.is_active_on_edge)


def _evaluation_info(requested: object, computed: dict[str, Any]) -> dict[str, Any]:
    """The capabilities of the expression; a requested type it cannot run keeps ``enabled: false`` and the reason."""
    info: dict[str, Any] = {}
    requested = requested if isinstance(requested, dict) else {}
    for kind in ("batch", "continuous", "synchronous"):
        possible = computed[kind]
        asked = requested.get(kind, {}).get("enabled") if isinstance(requested.get(kind), dict) else None
        entry = dict(possible)
        if asked is False:
            entry = {"enabled": False}
        info[kind] = entry
    return info


def create_definition(session: Session, scope: Scope, body: dict[str, Any], schema: SchemaSource) -> SegmentDefinition:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' is required and must be a non-empty string", field="name")
    schema_name = optional_object(body, "schema").get("name", PROFILE_SCHEMA_NAME)
    if schema_name != PROFILE_SCHEMA_NAME:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA_NAME}", field="schema.name")
    if session.scalars(select(SegmentDefinition.id).where(SegmentDefinition.sandbox_id == scope.sandbox_id,
                                                          SegmentDefinition.name == name.strip())).first():
        raise Conflict(f"a segment definition named '{name.strip()}' already exists in this sandbox", field="name")
    analysis = analyze(body.get("expression"), schema())
    definition_id = new_uuid()
    _check_references(session, scope, definition_id, analysis.references)
    policy_id = _merge_policy_id(session, scope, body.get("mergePolicyId"))
    ttl = _ttl(body.get("ttlInDays", 30))
    now = now_ms()
    definition = SegmentDefinition(
        id=definition_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=name.strip(),
        description=optional_string(body, "description"), expression=_expression_json(body["expression"]), pql=analysis.text,
        schema_name=schema_name, merge_policy_id=policy_id, ttl_in_days=ttl,
        evaluation_info=_evaluation_info(body.get("evaluationInfo"),
                                         _eligibility(session, scope, analysis.expr, policy_id)),
        labels=string_list(body, "labels"), dependencies=list(analysis.references),
        lifecycle_state=_lifecycle_state(body.get("lifecycleState", "published")), version=1, created=now, updated=now,
    )
    session.add(definition)
    _snapshot(session, definition)
    session.flush()
    return definition


def _expression_json(expression: dict[str, Any]) -> dict[str, Any]:
    return {"type": "PQL", "format": expression.get("format", "pql/text"), "value": expression["value"]}


def _ttl(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TTL_DAYS:
        raise BadRequest(f"'ttlInDays' must be a whole number of days from 1 to {MAX_TTL_DAYS}", field="ttlInDays")
    return value


def _lifecycle_state(value: object) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LIFECYCLE_STATE:
        raise BadRequest(f"'lifecycleState' must be a word such as published (at most {MAX_LIFECYCLE_STATE} "
                         "characters)", field="lifecycleState")
    return value


def _merge_policy_id(session: Session, scope: Scope, value: object) -> str:
    if value is None:
        return policies.ensure_default(session, scope).id
    if not isinstance(value, str):
        raise BadRequest("'mergePolicyId' must be a string", field="mergePolicyId")
    try:
        return policies.get_policy(session, scope, value).id
    except NotFound as exc:
        raise BadRequest(f"merge policy '{value}' does not exist in this sandbox", field="mergePolicyId") from exc


def _snapshot(session: Session, definition: SegmentDefinition) -> None:
    session.add(SegmentDefinitionVersion(
        definition_id=definition.id, version=definition.version, name=definition.name,
        expression=definition.expression, pql=definition.pql, merge_policy_id=definition.merge_policy_id,
        created=definition.updated,
    ))


def get_definition(session: Session, scope: Scope, definition_id: str) -> SegmentDefinition:
    return scope.get(session, SegmentDefinition, definition_id, "segment definition")


def list_definitions(session: Session, scope: Scope, *, start: int, limit: int) -> tuple[list[SegmentDefinition], int]:
    query = select(SegmentDefinition).where(SegmentDefinition.sandbox_id == scope.sandbox_id)
    total = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    items = list(session.scalars(query.order_by(SegmentDefinition.created, SegmentDefinition.id)
                                 .offset(start).limit(limit)))
    return items, total


def update_definition(session: Session, scope: Scope, definition_id: str, body: dict[str, Any],
                      schema: SchemaSource) -> SegmentDefinition:
    definition = get_definition(session, scope, definition_id)
    if "name" in body:
        name = body["name"]
        if not isinstance(name, str) or not name.strip():
            raise BadRequest("'name' must be a non-empty string", field="name")
        clash = session.scalars(select(SegmentDefinition.id).where(
            SegmentDefinition.sandbox_id == scope.sandbox_id, SegmentDefinition.name == name.strip(),
            SegmentDefinition.id != definition.id)).first()
        if clash:
            raise Conflict(f"a segment definition named '{name.strip()}' already exists in this sandbox", field="name")
        definition.name = name.strip()
    if "description" in body:
        definition.description = optional_string(body, "description")
    if "mergePolicyId" in body:
        definition.merge_policy_id = _merge_policy_id(session, scope, body["mergePolicyId"])
    expr: ast.Expr | None = None
    if "expression" in body and body["expression"] != definition.expression:
        analysis = analyze(body["expression"], schema())
        _check_references(session, scope, definition.id, analysis.references)
        definition.expression = _expression_json(body["expression"])
        definition.pql = analysis.text
        definition.dependencies = list(analysis.references)
        expr = analysis.expr
    elif "evaluationInfo" in body or "mergePolicyId" in body:
        expr = parse(definition.pql)
    if expr is not None:
        # AEP recomputes eligibility only for edited definitions; others keep what they had.
        computed = _eligibility(session, scope, expr, definition.merge_policy_id)
        definition.evaluation_info = _evaluation_info(body.get("evaluationInfo"), computed)
    if "ttlInDays" in body:
        definition.ttl_in_days = _ttl(body["ttlInDays"])
    if "labels" in body:
        definition.labels = string_list(body, "labels")
    if "lifecycleState" in body:
        definition.lifecycle_state = _lifecycle_state(body["lifecycleState"])
    definition.version += 1
    definition.updated = now_ms()
    _snapshot(session, definition)
    return definition


def dependents(session: Session, scope: Scope, definition_id: str) -> list[str]:
    return sorted(d.id for d in _definitions(session, scope) if definition_id in (d.dependencies or []))


def delete_definition(session: Session, scope: Scope, definition_id: str) -> None:
    definition = get_definition(session, scope, definition_id)
    users = dependents(session, scope, definition.id)
    if users:
        raise Conflict(f"segment definition '{definition_id}' is used by inSegment in: {', '.join(users)}",
                       report={"dependents": users})
    session.delete(definition)


def definition_json(definition: SegmentDefinition, sandbox: dict[str, Any], dependents_: list[str]) -> dict[str, Any]:
    return {
        "id": definition.id,
        "schema": {"name": definition.schema_name},
        "profileInstanceId": "ups",
        "imsOrgId": definition.org_id,
        "sandbox": sandbox,
        "name": definition.name,
        "description": definition.description or "",
        "expression": definition.expression,
        "mergePolicyId": definition.merge_policy_id,
        "evaluationInfo": definition.evaluation_info,
        "ttlInDays": definition.ttl_in_days,
        "labels": definition.labels or [],
        "lifecycleState": definition.lifecycle_state,
        "version": definition.version,
        "dependencies": list(definition.dependencies or []),
        "dependents": dependents_,
        "creationTime": definition.created,
        "updateTime": definition.updated,
        "updateEpoch": definition.updated // 1000,
    }
