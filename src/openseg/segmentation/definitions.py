"""Segment definitions (UPS ``/segment/definitions``): PQL checked at the door, versions, dependencies.

Each service function takes a fresh unit of work (``ports.SegmentationUnitOfWork``), runs in one
transaction of it and commits on success; an error leaves nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from openseg.clock import new_uuid, now_ms
from openseg.errors import BadRequest, Conflict, NotFound
from openseg.pql import ast, parse
from openseg.pql.capabilities import evaluation_info, is_profile_only
from openseg.pql.checker import check
from openseg.pql.errors import PqlError
from openseg.profiles.model import PROFILE_SCHEMA_NAME, MergePolicy
from openseg.request_fields import json_type, optional_object, optional_string, string_list
from openseg.scope import in_scope
from openseg.segmentation.expressions import pql_error, read_expression
from openseg.segmentation.model import SegmentDefinition
from openseg.segmentation.ports import SandboxScope, SegmentationUnitOfWork
from openseg.xdm.schema import Schema

__all__ = [
    "MAX_LIFECYCLE_STATE",
    "MAX_TTL_DAYS",
    "PROFILE_SCHEMA_NAME",
    "Analysis",
    "Described",
    "SchemaSource",
    "analyze",
    "check_expression",
    "create_definition",
    "definition_json",
    "delete_definition",
    "get_definition",
    "list_definitions",
    "read_definition",
    "read_definitions",
    "update_definition",
]

SchemaSource = Callable[[], Schema]
#: A definition as the API shows it: with the ids of the definitions that use it (``dependents``).
Described = tuple[SegmentDefinition, list[str]]

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


def _get(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_id: str) -> SegmentDefinition:
    return in_scope(uow.segment_definitions.get(definition_id), scope, "segment definition", definition_id)


def _check_references(existing: list[SegmentDefinition], definition_id: str, references: tuple[str, ...]) -> None:
    """Referenced segments must exist in the sandbox (``existing``), and the dependency graph must stay acyclic."""
    known = {d.id for d in existing}
    unknown = [r for r in references if r not in known and r != definition_id]
    if unknown:
        raise BadRequest(f"inSegment refers to segment definitions that do not exist: {', '.join(unknown)}",
                         field="expression.value", report={"unknownSegments": unknown})
    graph = {d.id: list(d.dependencies or []) for d in existing}
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


def _dependents(existing: list[SegmentDefinition], definition_id: str) -> list[str]:
    return sorted(d.id for d in existing if definition_id in (d.dependencies or []))


def _eligibility(existing: list[SegmentDefinition], expr: ast.Expr, policy: MergePolicy) -> dict[str, Any]:
    """AEP's evaluation types for ``expr`` under the merge policy, knowing which referenced segments are
    profile only (``inSegment`` of those may stream and go to the edge beside an event)."""
    by_id = {d.id: d for d in existing}
    known: dict[str, bool] = {}

    def profile_only(segment_id: str) -> bool:
        if segment_id not in known:
            known[segment_id] = False  # the dependency graph is acyclic; this only guards the recursion
            definition = by_id.get(segment_id)
            known[segment_id] = definition is not None and is_profile_only(parse(definition.pql), profile_only)
        return known[segment_id]

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


def _opted_out(info: dict[str, Any]) -> dict[str, Any]:
    """The evaluation types a definition's user turned off (``{"enabled": false}`` with no ``reason``: a type the
    expression cannot run always has one), kept off when an edit recomputes the others."""
    return {kind: {"enabled": False} for kind, entry in info.items() if entry == {"enabled": False}}


#: openseg's extension of a definition: stream it whatever its shape (``SegmentDefinition.streaming_opt_in``).
STREAMING_OPT_IN = "openseg:streamingOptIn"


def _streaming_opt_in(body: dict[str, Any]) -> bool:
    """``openseg:streamingOptIn``: true or false (absent or null: false)."""
    value = body.get(STREAMING_OPT_IN)
    if value is None or isinstance(value, bool):
        return bool(value)
    raise BadRequest(f"'{STREAMING_OPT_IN}' must be true or false, not {json_type(value)}", field=STREAMING_OPT_IN)


def _policy(uow: SegmentationUnitOfWork, scope: SandboxScope, policy_id: str) -> MergePolicy:
    found = uow.merge_policies.get(policy_id)
    if found is None or found.org_id != scope.org_id or found.sandbox_id != scope.sandbox_id:
        raise NotFound.of("merge policy", policy_id)
    return found


def _default_policy(uow: SegmentationUnitOfWork, scope: SandboxScope) -> MergePolicy:
    """The sandbox's default merge policy (created with the sandbox; added here only if one is missing)."""
    existing = next((p for p in uow.merge_policies.in_sandbox(scope.sandbox_id) if p.is_default), None)
    if existing is not None:
        return existing
    policy = MergePolicy.default_for(scope.org_id, scope.sandbox_id, policy_id=new_uuid(), now=now_ms())
    uow.merge_policies.add(policy)
    return policy


def _merge_policy(uow: SegmentationUnitOfWork, scope: SandboxScope, value: object) -> MergePolicy:
    if value is None:
        return _default_policy(uow, scope)
    if not isinstance(value, str):
        raise BadRequest("'mergePolicyId' must be a string", field="mergePolicyId")
    try:
        return _policy(uow, scope, value)
    except NotFound as exc:
        raise BadRequest(f"merge policy '{value}' does not exist in this sandbox", field="mergePolicyId") from exc


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


def _name_taken(existing: list[SegmentDefinition], name: str, *, other_than: str | None = None) -> Conflict | None:
    if any(d.name == name and d.id != other_than for d in existing):
        return Conflict(f"a segment definition named '{name}' already exists in this sandbox", field="name")
    return None


def create_definition(uow: SegmentationUnitOfWork, scope: SandboxScope, body: dict[str, Any],
                      schema: SchemaSource) -> SegmentDefinition:
    """Create a segment definition (UPS ``POST /segment/definitions``) as its version 1.

    Args:
        uow: A fresh unit of work; committed when the definition is stored.
        scope: The org and sandbox it belongs to.
        body: AEP's definition body (``name``, ``expression`` and the optional fields).
        schema: The sandbox's union schema, read only when the body is otherwise valid so far.

    Returns:
        The stored definition. Nothing can refer to it yet: it has no dependents.

    Raises:
        BadRequest: An invalid field, an expression that does not check, an unknown segment or merge policy,
            or an ``inSegment`` cycle.
        Conflict: The sandbox has a definition of that name.
    """
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' is required and must be a non-empty string", field="name")
    schema_name = optional_object(body, "schema").get("name", PROFILE_SCHEMA_NAME)
    if schema_name != PROFILE_SCHEMA_NAME:
        raise BadRequest(f"'schema.name' must be {PROFILE_SCHEMA_NAME}", field="schema.name")
    with uow:
        existing = uow.segment_definitions.in_sandbox(scope.sandbox_id)
        clash = _name_taken(existing, name.strip())
        if clash is not None:
            raise clash
        analysis = analyze(body.get("expression"), schema())
        definition_id = new_uuid()
        _check_references(existing, definition_id, analysis.references)
        policy = _merge_policy(uow, scope, body.get("mergePolicyId"))
        ttl = _ttl(body.get("ttlInDays", 30))
        now = now_ms()
        definition = SegmentDefinition(
            id=definition_id, org_id=scope.org_id, sandbox_id=scope.sandbox_id, name=name.strip(),
            description=optional_string(body, "description"), expression=_expression_json(body["expression"]),
            pql=analysis.text, schema_name=schema_name, merge_policy_id=policy.id, ttl_in_days=ttl,
            evaluation_info=_evaluation_info(body.get("evaluationInfo"), _eligibility(existing, analysis.expr, policy)),
            labels=string_list(body, "labels"), dependencies=list(analysis.references),
            lifecycle_state=_lifecycle_state(body.get("lifecycleState", "published")), version=1, created=now,
            updated=now, payload_schema=optional_string(body, "payloadSchema"),
            streaming_opt_in=_streaming_opt_in(body),
        )
        uow.segment_definitions.add(definition)
        uow.commit()
    return definition


def get_definition(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_id: str) -> SegmentDefinition:
    """The definition with this id in the scope.

    Raises:
        NotFound: No such definition in this org and sandbox.
    """
    with uow:
        return _get(uow, scope, definition_id)


def read_definition(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_id: str) -> Described:
    """The definition with this id in the scope, and the ids of the definitions that use it (``inSegment``).

    Raises:
        NotFound: No such definition in this org and sandbox.
    """
    with uow:
        definition = _get(uow, scope, definition_id)
        return definition, _dependents(uow.segment_definitions.in_sandbox(scope.sandbox_id), definition.id)


def read_definitions(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_ids: list[str]) -> dict[str, Described]:
    """Those of ``definition_ids`` that exist in the scope, each with its dependents, in the order asked (the
    bulk get answers the others as not found)."""
    with uow:
        existing = uow.segment_definitions.in_sandbox(scope.sandbox_id)
        by_id = {d.id: d for d in existing if d.org_id == scope.org_id}
        return {i: (by_id[i], _dependents(existing, i)) for i in definition_ids if i in by_id}


def list_definitions(uow: SegmentationUnitOfWork, scope: SandboxScope, *, start: int,
                     limit: int) -> tuple[list[Described], int]:
    """One page of the sandbox's definitions, oldest first, each with its dependents, and how many there are."""
    with uow:
        existing = uow.segment_definitions.in_sandbox(scope.sandbox_id)
    return [(d, _dependents(existing, d.id)) for d in existing[start:start + limit]], len(existing)


def update_definition(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_id: str, body: dict[str, Any],
                      schema: SchemaSource) -> Described:
    """Change the fields ``body`` has (UPS ``PATCH /segment/definitions/{id}``); a new version each time.

    Returns:
        The definition as stored, and its dependents.

    Raises:
        NotFound: No such definition in this org and sandbox.
        BadRequest: As :func:`create_definition`, for the fields given.
        Conflict: Another definition of the sandbox has the new name.
    """
    with uow:
        definition = _get(uow, scope, definition_id)
        existing = uow.segment_definitions.in_sandbox(scope.sandbox_id)
        changes: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip():
                raise BadRequest("'name' must be a non-empty string", field="name")
            clash = _name_taken(existing, name.strip(), other_than=definition.id)
            if clash is not None:
                raise clash
            changes["name"] = name.strip()
        if "description" in body:
            changes["description"] = optional_string(body, "description")
        policy: MergePolicy | None = None
        if "mergePolicyId" in body:
            policy = _merge_policy(uow, scope, body["mergePolicyId"])
            changes["merge_policy_id"] = policy.id
        expr: ast.Expr | None = None
        if "expression" in body and body["expression"] != definition.expression:
            analysis = analyze(body["expression"], schema())
            _check_references(existing, definition.id, analysis.references)
            changes.update(expression=_expression_json(body["expression"]), pql=analysis.text,
                           dependencies=list(analysis.references))
            expr = analysis.expr
        elif "evaluationInfo" in body or "mergePolicyId" in body:
            expr = parse(definition.pql)
        if expr is not None:
            # AEP recomputes eligibility only for edited definitions; others keep what they had.
            computed = _eligibility(existing, expr, policy or _policy(uow, scope, definition.merge_policy_id))
            requested = body["evaluationInfo"] if "evaluationInfo" in body else _opted_out(definition.evaluation_info)
            changes["evaluation_info"] = _evaluation_info(requested, computed)
        if "ttlInDays" in body:
            changes["ttl_in_days"] = _ttl(body["ttlInDays"])
        if STREAMING_OPT_IN in body:
            changes["streaming_opt_in"] = _streaming_opt_in(body)
        if "labels" in body:
            changes["labels"] = string_list(body, "labels")
        if "lifecycleState" in body:
            changes["lifecycle_state"] = _lifecycle_state(body["lifecycleState"])
        if "payloadSchema" in body:
            changes["payload_schema"] = optional_string(body, "payloadSchema")
        definition = replace(definition, **changes, version=definition.version + 1, updated=now_ms())
        uow.segment_definitions.update(definition)
        uow.commit()
    return definition, _dependents(existing, definition.id)


def check_expression(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_id: str, expression: object,
                     schema: SchemaSource) -> Analysis:
    """Check ``expression`` as a PATCH of the definition would before storing it (a dry run's proposal).

    Raises:
        NotFound: No such definition in this org and sandbox (whatever the expression).
        BadRequest: The expression does not check, names unknown segments or makes an ``inSegment`` cycle.
    """
    with uow:
        _get(uow, scope, definition_id)
        analysis = analyze(expression, schema())
        _check_references(uow.segment_definitions.in_sandbox(scope.sandbox_id), definition_id, analysis.references)
        return analysis


def delete_definition(uow: SegmentationUnitOfWork, scope: SandboxScope, definition_id: str) -> None:
    """Delete a definition (UPS ``DELETE /segment/definitions/{id}``).

    Raises:
        NotFound: No such definition in this org and sandbox.
        Conflict: Other definitions use it with ``inSegment`` (named in the report).
    """
    with uow:
        definition = _get(uow, scope, definition_id)
        users = _dependents(uow.segment_definitions.in_sandbox(scope.sandbox_id), definition.id)
        if users:
            raise Conflict(f"segment definition '{definition_id}' is used by inSegment in: {', '.join(users)}",
                           report={"dependents": users})
        uow.segment_definitions.remove(definition.id)
        uow.commit()


def definition_json(definition: SegmentDefinition, sandbox: dict[str, Any], dependents_: list[str]) -> dict[str, Any]:
    """The definition as AEP shows it (``payloadSchema`` only when it was given: the spec's type is a string)."""
    body: dict[str, Any] = {
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
    if definition.payload_schema is not None:
        body["payloadSchema"] = definition.payload_schema
    if definition.streaming_opt_in:
        body[STREAMING_OPT_IN] = True
    return body
