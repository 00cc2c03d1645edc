"""Segment preview and estimate (UPS ``/preview``, ``/estimate``): exact when the sandbox is small
enough to count in seconds, otherwise a Bernoulli sample with a 95% confidence interval."""

from __future__ import annotations

import math
import os
import secrets
from typing import TYPE_CHECKING, Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq
from sqlglot import exp

from openseg.clock import ms_to_datetime, now_ms
from openseg.errors import BadRequest
from openseg.profiles import policies
from openseg.profiles.ports import ProfileServices, ProfilesUnitOfWork
from openseg.profiles.service import sandbox_schema, serving_store
from openseg.profiles.store import EVENTS_FILE, PROFILES_FILE, events_source
from openseg.scope import Scope, in_scope
from openseg.segmentation import membership
from openseg.segmentation.definitions import analyze
from openseg.segmentation.evaluate import primary_namespaces, qualified_pairs
from openseg.segmentation.model import Preview
from openseg.segmentation.planner import arrow_paths, plan_segments
from openseg.segmentation.ports import PreviewRepository, SegmentDefinitionRepository
from openseg.segmentation.statements import statement
from openseg.xdm.schema import INTERNAL_COLUMNS

if TYPE_CHECKING:
    from openseg.engines.base import Engine


class PreviewUnitOfWork(ProfilesUnitOfWork, Protocol):
    """A profile unit of work that holds previews and reads segment definitions too."""

    @property
    def segment_definitions(self) -> SegmentDefinitionRepository: ...

    @property
    def previews(self) -> PreviewRepository: ...


class PreviewServices(ProfileServices, Protocol):
    """What a preview takes from the container (``openseg.container.Services`` is one)."""

    def uow(self) -> PreviewUnitOfWork: ...

    def reader(self) -> Engine: ...

#: Sandboxes with at most this many merged profiles are counted exactly.
EXACT_LIMIT = int(os.environ.get("OPENSEG_PREVIEW_EXACT_LIMIT", "2000000"))
#: Profiles read for a sampled estimate.
SAMPLE_SIZE = 200_000
#: Sample profiles returned by a preview.
PREVIEW_PROFILES = 20
Z_95 = 1.959964


def create_preview(services: PreviewServices, scope: Scope, body: object,
                   exact_limit: int = EXACT_LIMIT, sample_size: int = SAMPLE_SIZE) -> Preview:
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object", field="body")
    predicate_type = body.get("predicateType", "pql/text")
    if predicate_type not in ("pql/text", "pql/json"):
        raise BadRequest("'predicateType' must be pql/text", field="predicateType")
    model = body.get("predicateModel", "_xdm.context.profile")
    if model != "_xdm.context.profile":
        raise BadRequest("'predicateModel' must be _xdm.context.profile", field="predicateModel")
    analysis = analyze({"type": "PQL", "format": predicate_type, "value": body.get("predicateExpression")},
                       sandbox_schema(services, scope), field="predicateExpression")
    with services.uow() as uow:
        _check_segments(uow.segment_definitions, scope, analysis.references)
    policy_id = body.get("mergePolicyId")
    # A sandbox's first request may create its default policy: committed before serving_store, whose units of
    # work of its own (and the build it may queue) look for it.
    policy, record = (policies.read_policy(services.uow(), scope, policy_id) if isinstance(policy_id, str)
                      else policies.read_default(services.uow(), scope))
    members = membership.store_for(services.settings.home, scope.sandbox_id, policy.id)
    relation, previous = members.relation(members.state(record.membership_path if record else None))
    build = serving_store(services, scope, policy, build_empty=True)  # a sandbox without data previews nobody
    store = build.path
    as_of = ms_to_datetime(now_ms())
    total = pq.ParquetFile(store / PROFILES_FILE).metadata.num_rows
    exact = total <= exact_limit
    profiles: Any = str(store / PROFILES_FILE)
    if not exact:
        profiles = _sample(services.reader(), profiles, sample_size / total)
    plan = plan_segments([("preview", analysis.expr)], as_of=as_of, dialect=services.engine().dialect,
                         membership=relation if previous is not None else None,
                         has_path=arrow_paths(pq.read_schema(store / PROFILES_FILE),
                                              pq.read_schema(store / EVENTS_FILE)))
    tables: dict[str, Any] = {"profiles": profiles, "events": events_source(store)}
    if previous is not None:
        tables["membership"] = previous
    result = services.engine().run(plan.query, tables)
    qualified = qualified_pairs(result, plan.columns)
    read = result.num_rows
    hits = qualified.num_rows
    namespaces = primary_namespaces(services.engine(), store, qualified).get("preview", {})
    if exact:
        estimate, error = hits, 0.0
    else:
        share = hits / read if read else 0.0
        estimate = round(total * share)
        error = total * math.sqrt(share * (1 - share) / read * (1 - read / total)) if read else 0.0
    scale = 1.0 if exact or not read else total / read
    sample_ids = qualified["_profile_id"].to_pylist()[:PREVIEW_PROFILES]
    now = now_ms()
    preview = Preview(
        id=f"{secrets.token_hex(8)}:{policy.id}", org_id=scope.org_id, sandbox_id=scope.sandbox_id,
        request={k: body.get(k) for k in ("predicateExpression", "predicateType", "predicateModel", "graphType",
                                         "mergePolicyId")},
        state="RESULT_READY",
        result={
            "exact": exact, "estimatedSize": estimate, "standardError": round(error, 2),
            "confidenceInterval": [max(0, round(estimate - Z_95 * error)), round(estimate + Z_95 * error)],
            "profilesReadSoFar": read, "totalProfiles": total, "qualifiedInSample": hits,
            "namespaces": {ns: round(n * scale) for ns, n in namespaces.items()},
            "namespacesMatched": dict(namespaces),
            "profiles": _entities(services.reader(), store, sample_ids),
            "profileBuild": build.to_json(),
        },
        created=now, updated=now,
    )
    with services.uow() as uow:
        uow.previews.add(preview)
        uow.commit()
    return preview


def _check_segments(definitions: SegmentDefinitionRepository, scope: Scope, segment_ids: tuple[str, ...]) -> None:
    """``inSegment`` may name only segments of the caller's sandbox: another org's or sandbox's id is unknown."""
    unknown = []
    for segment_id in segment_ids:
        found = definitions.get(segment_id)
        if found is None or found.org_id != scope.org_id or found.sandbox_id != scope.sandbox_id:
            unknown.append(segment_id)
    if unknown:
        raise BadRequest(f"inSegment refers to segment definitions that do not exist in this sandbox: "
                         f"{', '.join(unknown)}", field="predicateExpression", report={"unknownSegments": unknown})


def _sample(reader: Engine, path: str, fraction: float) -> pa.Table:
    """A Bernoulli sample of ``fraction`` of the profiles (seeded: the same preview samples the same)."""
    query = statement(f"SELECT * FROM profiles USING SAMPLE {min(100.0, fraction * 100):.6f}% (bernoulli, 42)")
    return reader.run(query, {"profiles": path})


def _entities(reader: Engine, store: Any, ids: list[str]) -> list[dict[str, Any]]:
    if not ids:
        return []
    query = (exp.select(exp.Star()).from_("profiles")
             .where(exp.column("_profile_id").isin(*(exp.Literal.string(i) for i in ids))).order_by("_profile_id"))
    rows = reader.run(query, {"profiles": str(store / PROFILES_FILE)}).to_pylist()
    from openseg.json_values import json_value

    return [{"entityId": row["_profile_id"], "lastModifiedAt": json_value(row["_lastModifiedAt"]),
             "entity": json_value({k: v for k, v in row.items() if k not in INTERNAL_COLUMNS})} for row in rows]


def get_preview(uow: PreviewUnitOfWork, scope: Scope, preview_id: str) -> Preview:
    """The preview, or 404 when it does not exist in the scope."""
    with uow:
        return in_scope(uow.previews.get(preview_id), scope, "preview", preview_id)


def delete_preview(uow: PreviewUnitOfWork, scope: Scope, preview_id: str) -> None:
    """Delete the preview (404 when it does not exist in the scope)."""
    with uow:
        in_scope(uow.previews.get(preview_id), scope, "preview", preview_id)
        uow.previews.remove(preview_id)
        uow.commit()


def preview_json(preview: Preview) -> dict[str, Any]:
    """The preview as AEP shows it (``previewQueryId``, ``previewQueryStatus`` and ``previewExecutionId`` are
    required when it is created: openseg runs each preview's query once, at once, so the query is the preview
    and its one execution is number 1)."""
    result = preview.result
    return {
        "state": preview.state,
        "previewId": preview.id,
        "previewQueryId": preview.id,
        "previewQueryStatus": preview.state,
        "previewExecutionId": 1,
        "results": result["profiles"],
        "page": {"offset": 0, "size": len(result["profiles"]), "totalCount": result["estimatedSize"]},
        "openseg:exact": result["exact"],
        **_profile_build(result),
        "_links": {"estimate": {"href": f"/data/core/ups/estimate/{preview.id}"}},
    }


def estimate_json(preview: Preview) -> dict[str, Any]:
    """The estimate as AEP shows it: ``standardError`` a whole number of profiles, ``_links.preview`` a string,
    ``profilesMatchedSoFar`` the profiles read that qualified (``segmentation.yaml``); openseg adds the 95%
    interval's bounds (``openseg:confidenceBounds``)."""
    result = preview.result
    low, high = result["confidenceInterval"]
    matched = result.get("namespacesMatched", result["namespaces"])
    return {
        "state": preview.state,
        "previewId": preview.id,
        "estimatedSize": result["estimatedSize"],
        "standardError": round(result["standardError"]),
        "confidenceInterval": "95%",
        "openseg:confidenceBounds": {"low": low, "high": high},
        "openseg:exact": result["exact"],
        **_profile_build(result),
        "profilesReadSoFar": result["profilesReadSoFar"],
        "numRowsToRead": result["profilesReadSoFar"],
        "profilesMatchedSoFar": result["qualifiedInSample"],
        "totalProfiles": result["totalProfiles"],
        "totalRows": result["totalProfiles"],
        "estimatedNamespaceDistribution": [{"namespaceId": ns, "estimatedSize": n, "profilesMatchedSoFar": matched.get(ns, 0)}
                                           for ns, n in sorted(result["namespaces"].items())],
        "_links": {"preview": f"/data/core/ups/preview/{preview.id}"},
    }


def _profile_build(result: dict[str, Any]) -> dict[str, Any]:
    """``openseg:profileBuild``: the build a preview read and whether it was stale (absent on older previews)."""
    build = result.get("profileBuild")
    return {"openseg:profileBuild": build} if build is not None else {}
