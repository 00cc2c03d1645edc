"""Profile access (UPS ``/access/entities``): a merged profile by any identity, its events, erasure."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow.parquet as pq
from sqlglot import exp
from sqlalchemy import select

from openseg.catalog.query import json_value
from openseg.catalog.service import Scope, dataset_kind, is_profile_enabled
from openseg.errors import NotFound
from openseg.profiles import policies
from openseg.profiles.service import ensure_store, request_build
from openseg.profiles.store import EVENTS_FILE, IDENTITIES_FILE, PROFILES_FILE, resolve_store
from openseg.store.models import Batch, DataFile, Dataset, MergePolicy, ProfileStore

if TYPE_CHECKING:
    from openseg.services import Services

INTERNAL = ("_profile_id", "_sources", "_lastModifiedAt", "_hasProfileRecord", "_ingestTime")


@dataclass(frozen=True)
class Located:
    profile_id: str
    policy: MergePolicy
    store: Path
    membership_path: str | None


def _policy(services: Services, scope: Scope, policy_id: str | None) -> tuple[MergePolicy, str | None]:
    with services.db.session() as session:
        policy = (policies.get_policy(session, scope, policy_id) if policy_id
                  else policies.ensure_default(session, scope))
        record = session.get(ProfileStore, policy.id)
        membership_path = record.membership_path if record else None
        session.expunge(policy)
    return policy, membership_path


def locate(services: Services, scope: Scope, namespace: str, identity: str, policy_id: str | None = None) -> Located:
    """The merged profile holding ``namespace:identity`` under the policy (404 when none does)."""
    policy, membership_path = _policy(services, scope, policy_id)
    store = resolve_store(ensure_store(services, scope, policy))
    with duckdb.connect() as con:
        found = con.sql(
            "SELECT _profile_id FROM read_parquet($path) WHERE lower(namespace) = lower($ns) AND id = $id "
            "ORDER BY _profile_id LIMIT 1",
            params={"path": str(store / IDENTITIES_FILE), "ns": namespace, "id": identity},
        ).fetchall()
    if not found:
        raise NotFound(f"no profile has identity {namespace}:{identity}",
                       report={"entityId": identity, "entityIdNS": namespace})
    return Located(str(found[0][0]), policy, store, membership_path)


def _project(entity: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if not fields:
        return entity
    projected: dict[str, Any] = {}
    for path in fields:
        source: Any = entity
        parts = path.split(".")
        for part in parts:
            source = source.get(part) if isinstance(source, dict) else None
        if source is None:
            continue
        target = projected
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
    return projected


def _identity_map_json(entries: Any) -> dict[str, Any]:
    return {namespace: [{k: v for k, v in i.items() if v is not None} for i in ids] for namespace, ids in entries or []}


def profile_entity(services: Services, scope: Scope, located: Located, fields: list[str] | None) -> dict[str, Any]:
    """AEP's entity object for one merged profile (with ``segmentMembership`` from the last jobs)."""
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        rows = con.sql("SELECT * FROM read_parquet($path) WHERE _profile_id = $pid",
                       params={"path": str(located.store / PROFILES_FILE), "pid": located.profile_id}
                       ).to_arrow_table().to_pylist()
        membership: dict[str, Any] = {}
        if located.membership_path and Path(located.membership_path).is_file():
            for segment_id, status, qualified in con.sql(
                "SELECT segment_id, status, lastQualificationTime FROM read_parquet($path) WHERE _profile_id = $pid "
                "ORDER BY segment_id",
                params={"path": located.membership_path, "pid": located.profile_id},
            ).fetchall():
                membership[segment_id] = {"status": status, "lastQualificationTime": json_value(qualified)}
    if not rows:
        raise NotFound(f"profile '{located.profile_id}' was not found")
    row = rows[0]
    entity = {k: json_value(v) for k, v in row.items() if k not in INTERNAL and v is not None}
    entity["identityMap"] = _identity_map_json(row.get("identityMap"))
    if membership:
        entity["segmentMembership"] = {**(entity.get("segmentMembership") or {}), "ups": membership}
    graph = sorted(f"{ns}:{i['id']}" for ns, ids in entity["identityMap"].items() for i in ids)
    entity = _project(entity, fields) | {"identityMap": entity["identityMap"]} if fields else entity
    if fields and membership:
        entity["segmentMembership"] = {"ups": membership}
    return {
        "entityId": located.profile_id,
        "mergePolicy": {"id": located.policy.id},
        "sources": list(row.get("_sources") or []),
        "tags": [],
        "identityGraph": graph,
        "entity": entity,
        "lastModifiedAt": json_value(row.get("_lastModifiedAt")),
    }


def profile_events(located: Located, *, start: datetime | None, end: datetime | None, limit: int,
                   descending: bool, offset: int) -> tuple[list[dict[str, Any]], bool]:
    """One page of the profile's ExperienceEvents; True when more follow."""
    conditions = ["_profile_id = $pid"]
    params: dict[str, Any] = {"path": str(located.store / EVENTS_FILE), "pid": located.profile_id,
                              "limit": limit + 1, "offset": offset}
    if start is not None:
        conditions.append("timestamp >= $start")
        params["start"] = start.replace(tzinfo=None)
    if end is not None:
        conditions.append("timestamp < $end")
        params["end"] = end.replace(tzinfo=None)
    order = "timestamp DESC, _id DESC" if descending else "timestamp, _id"
    with duckdb.connect() as con:
        rows = con.sql(f"SELECT * FROM read_parquet($path) WHERE {' AND '.join(conditions)} "
                       f"ORDER BY {order} LIMIT $limit OFFSET $offset", params=params).to_arrow_table().to_pylist()
    children = []
    for row in rows[:limit]:
        stamp = row.get("timestamp")
        entity = {k: json_value(v) for k, v in row.items() if k not in INTERNAL and v is not None}
        entity["identityMap"] = _identity_map_json(row.get("identityMap"))
        children.append({"relatedEntityId": located.profile_id, "entityId": row.get("_id"),
                         "timestamp": int(stamp.timestamp() * 1000) if stamp else None, "entity": entity})
    return children, len(rows) > limit


def erase(services: Services, scope: Scope, namespace: str, identity: str) -> dict[str, int]:
    """Delete every fragment and event of the profile holding the identity from the lake, then rebuild.

    Files are rewritten without the profile's records (each replaced atomically), so the identity graph
    shrinks and no later build can bring the profile back.
    """
    located = locate(services, scope, namespace, identity)
    with duckdb.connect() as con:
        identities = con.sql("SELECT lower(namespace) AS ns, id FROM read_parquet($path) WHERE _profile_id = $pid",
                             params={"path": str(located.store / IDENTITIES_FILE), "pid": located.profile_id}
                             ).fetchall()
    keys = sorted({f"{ns}\x1f{i}" for ns, i in identities})
    removed = {"fragments": 0, "events": 0, "files": 0}
    with services.db.session() as session:
        datasets = {d.id: d for d in session.scalars(select(Dataset).where(Dataset.sandbox_id == scope.sandbox_id))
                    if is_profile_enabled(d) and dataset_kind(d) in ("profile", "event")}
        files = list(session.scalars(select(DataFile).join(Batch, Batch.id == DataFile.batch_id).where(
            DataFile.dataset_id.in_(list(datasets)), Batch.status == "success")))
        for data_file in files:
            kept, dropped = _rewrite_without(Path(data_file.path), keys)
            if dropped:
                kind = "events" if dataset_kind(datasets[data_file.dataset_id]) == "event" else "fragments"
                removed[kind] += dropped
                removed["files"] += 1
                data_file.records = kept
                data_file.length = Path(data_file.path).stat().st_size
        request_build(session, scope.sandbox_id)
    return removed


def _rewrite_without(path: Path, keys: list[str]) -> tuple[int, int]:
    """Rewrite ``path`` without rows whose identityMap holds one of ``keys``; (kept, dropped)."""
    partial = path.with_name(f".{path.name}.erase")
    with duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        relation = con.read_parquet(str(path))
        schema = pq.read_schema(path)
        identity_type = schema.field("identityMap").type if "identityMap" in schema.names else None
        if identity_type is None:
            return pq.ParquetFile(path).metadata.num_rows, 0
        if str(identity_type).startswith("map"):
            entries = "map_entries(identityMap)"
        else:  # a struct of lists (a Parquet upload may carry one): its fields are the namespaces
            members = ", ".join(
                f"{{'key': {exp.Literal.string(f.name).sql('duckdb')}, "
                f"'value': identityMap.{exp.to_identifier(f.name, quoted=True).sql('duckdb')}}}"
                for f in identity_type)
            entries = f"[{members}]"
        matches = (f"len(list_filter(flatten(list_transform({entries}, lambda e: list_transform(e.value, "
                   "lambda i: lower(e.key) || chr(31) || i.id))), lambda x: list_contains($keys, x))) > 0")
        total = pq.ParquetFile(path).metadata.num_rows
        dropped = con.sql(f"SELECT count(*) FROM read_parquet($path) WHERE {matches}",
                          params={"path": str(path), "keys": keys}).fetchall()[0][0]
        if not dropped:
            return total, 0
        table = con.sql(f"SELECT * FROM read_parquet($path) WHERE NOT ({matches})",
                        params={"path": str(path), "keys": keys}).to_arrow_table()
        del relation
    pq.write_table(table.cast(schema), partial, compression="zstd")
    os.replace(partial, path)
    return total - int(dropped), int(dropped)
