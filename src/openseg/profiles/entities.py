"""Profile access (UPS ``/access/entities``): a merged profile by any identity, its events, erasure.

A lookup reads the last complete build with the stream log's messages that build does not hold laid over it
(``profiles/overlay.py``): a streamed fragment or event is visible as soon as it is acknowledged, also to
another process than the one that logged it, and a streamed record linking two built profiles shows the
profile the next build will make of them (keyed by its smallest identity).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlglot import exp

from openseg import lake_files
from openseg.errors import BadRequest, NotFound
from openseg.json_values import json_value
from openseg.profiles import lookup
from openseg.profiles._sql import expression
from openseg.profiles.defaults import default_policy
from openseg.profiles.model import MergePolicy
from openseg.profiles.overlay import (
    BuiltFragment,
    Part,
    Reach,
    StreamedRecords,
    merged_profile,
    overlay_events,
    reach,
)
from openseg.profiles.ports import ProfileAccessServices
from openseg.profiles.service import ProfileStoreNotBuilt, ServingStore, request_build, serving_store
from openseg.profiles.store import IDENTITIES_FILE
from openseg.scope import Scope, in_scope
from openseg.segmentation import membership
from openseg.xdm.schema import INTERNAL_COLUMNS

if TYPE_CHECKING:
    from openseg.engines.base import Engine


@dataclass(frozen=True)
class Located:
    """A profile found by one of its identities under one merge policy's store."""

    profile_id: str
    namespace: str
    identity: str
    policy: MergePolicy
    store: Path
    membership_path: str | None
    members: membership.MembershipStore
    build: ServingStore
    #: The engine that reads the store (``ProfileAccessServices.reader``).
    engine: Engine
    #: The built profiles and streamed messages the profile is made of (``profiles/overlay.py``).
    streamed: Reach

    @property
    def overlaid(self) -> bool:
        """Whether streamed records the build does not hold change the profile."""
        return bool(self.streamed.messages) or self.streamed.linked


class ProfileNotFound(NotFound):
    """No profile of the build read holds the identity; ``build`` says which build that was (None when the
    sandbox has no profile data at all), since a stale build may not know a profile ingested since."""

    def __init__(self, namespace: str, identity: str, build: ServingStore | None) -> None:
        super().__init__(f"no profile has identity {namespace}:{identity}",
                         report={"entityId": identity, "entityIdNS": namespace})
        self.build = build


@dataclass(frozen=True)
class ProfileReader:
    """One merge policy's last complete profile build and its membership, as one request reads them.

    ``build`` is None when the sandbox has no profile data and nothing was ever built: every identity is
    unknown. ``engine`` reads the build.
    """

    policy: MergePolicy
    build: ServingStore | None
    membership_path: str | None
    members: membership.MembershipStore
    engine: Engine
    stream: StreamedRecords


def open_reader(services: ProfileAccessServices, scope: Scope, policy_id: str | None = None) -> ProfileReader:
    """The build lookups read under the policy (the sandbox's default when None), never built here.

    Raises:
        NotFound: If ``policy_id`` names no merge policy of the sandbox.
        ProfileStoreNotBuilt: If the policy has no complete build yet (one is queued).
    """
    policy, membership_path = services.lasting(
        ("reader", scope.org_id, scope.sandbox_id, policy_id or ""), lambda: _policy(services, scope, policy_id))
    build: ServingStore | None
    try:
        build = serving_store(services, scope, policy)
    except ProfileStoreNotBuilt as exc:
        if exc.has_data:
            raise
        build = None
    members = membership.store_for(services.settings.home, scope.sandbox_id, policy.id)
    return ProfileReader(policy, build, membership_path, members, services.reader(), services.stream_log())


def _policy(services: ProfileAccessServices, scope: Scope, policy_id: str | None) -> tuple[MergePolicy, str | None]:
    """The policy a lookup reads (the sandbox's default when None) and its published membership."""
    with services.uow() as uow:
        policy = (in_scope(uow.merge_policies.get(policy_id), scope, "merge policy", policy_id) if policy_id
                  else default_policy(uow.merge_policies, scope))
        record = uow.profile_stores.get(policy.id)
        uow.commit()
    return policy, record.membership_path if record else None


def find(reader: ProfileReader, namespace: str, identity: str) -> Located:
    """The merged profile of the reader's build holding ``namespace:identity``, with the streamed messages the
    build does not hold laid over it (404 when neither the build nor such a message has the identity)."""
    build = reader.build
    if build is None:
        raise ProfileNotFound(namespace, identity, None)
    linked = lookup.identity_graph(build.path) == "pdg"

    def part_of(part_namespace: str, part_identity: str) -> Part | None:
        profile_id = lookup.resolve_profile_id(build.path, part_namespace, part_identity, engine=reader.engine)
        if profile_id is None:
            return None
        identities = lookup.get_profile_identities(build.path, part_namespace, part_identity,
                                                   engine=reader.engine) if linked else None
        return Part(profile_id, tuple(identities or [(part_namespace, part_identity)]))

    found = reach(reader.stream, reader.policy.sandbox_id, [(namespace, identity)], build.watermark,
                  part_of=part_of, is_source=build.sources.__contains__, linked=linked)
    if not found.parts and not found.messages:
        raise ProfileNotFound(namespace, identity, build)
    return Located(found.profile_id, namespace, identity, reader.policy, build.path, reader.membership_path,
                   reader.members, build, reader.engine, found)


def locate(services: ProfileAccessServices, scope: Scope, namespace: str, identity: str, policy_id: str | None = None) -> Located:
    """The merged profile holding ``namespace:identity`` under the policy, in its last complete build.

    Raises:
        ProfileStoreNotBuilt: If the policy has no complete build yet (one is queued).
        ProfileNotFound: If no profile of that build holds the identity.
    """
    return find(open_reader(services, scope, policy_id), namespace, identity)


def _membership(located: Located) -> dict[str, Any]:
    store = located.members
    pairs = store.lookup(store.state(located.membership_path), [located.profile_id])[located.profile_id]
    return {segment_id: {"status": pair.status, "lastQualificationTime": json_value(pair.last_qualification_time)}
            for segment_id, pair in sorted(pairs.items())}


def profile_entity(located: Located, fields: list[str] | None) -> dict[str, Any]:
    """AEP's entity object for one merged profile (with ``segmentMembership`` from the last jobs).

    Under ``identityGraph: none`` the entity is the merge of the fragments carrying exactly the identity
    asked for (contract.md); membership is that of the profile the identity keys for segmentation.
    """
    profile = _overlaid_profile(located, fields) if located.overlaid else lookup.get_profile(
        located.store, located.namespace, located.identity, fields, engine=located.engine,
        profile_id=located.profile_id)
    if profile is None:
        raise ProfileNotFound(located.namespace, located.identity, located.build)
    entity = {k: json_value(v) for k, v in profile.items() if k not in INTERNAL_COLUMNS}
    ups = _membership(located)
    if ups:
        entity["segmentMembership"] = {**(entity.get("segmentMembership") or {}), "ups": ups}
    graph = sorted(f"{ns}:{i['id']}" for ns, ids in (entity.get("identityMap") or {}).items() for i in ids)
    return {
        "entityId": profile.get("_profile_id", located.profile_id),
        "mergePolicy": {"id": located.policy.id},
        "sources": list(profile.get("_sources") or []),
        "tags": [],
        "identityGraph": graph,
        "entity": entity,
        "lastModifiedAt": json_value(profile.get("_lastModifiedAt")),
    }


def _overlaid_profile(located: Located, fields: list[str] | None) -> dict[str, Any]:
    """The profile of the built profiles the streamed records reach, with the streamed fragments over them."""
    parts = located.streamed.parts
    rows = [lookup.get_profile(located.store, *(part.identities[0] if len(parts) > 1 else
                                                (located.namespace, located.identity)),
                               engine=located.engine, profile_id=part.profile_id) for part in parts]
    precedence, fragments = _precedence(located)
    profile: dict[str, Any] = lookup.without_nulls(merged_profile(located.streamed, rows, precedence=precedence,
                                                                  fragments=fragments))
    return lookup.project(profile, fields) if fields else profile


def _precedence(located: Located) -> tuple[tuple[str, ...], list[BuiltFragment]]:
    """Under ``dataSetPrecedence``: its dataset order and the built fragments of the profile's parts (the overlay
    ranks streamed fragments among them); else nothing."""
    order = lookup.precedence(located.store) if located.streamed.fragments else ()
    return order, lookup.parts_fragments(located.streamed, located.store, located.engine) if order else []


def _overlaid_events(located: Located) -> list[dict[str, Any]]:
    """Every event of the profile: its built profiles' and the streamed ones (each ``_id`` once), times naive UTC."""
    built = lookup.events_of(located.store, [p.profile_id for p in located.streamed.parts], engine=located.engine)
    events = overlay_events(built, located.streamed.events)
    return [lookup.without_nulls({**e, "timestamp": e["timestamp"].replace(tzinfo=None) if e["timestamp"] else None})
            for e in events]


def profile_events(located: Located, *, start: datetime | None, end: datetime | None, limit: int,
                   descending: bool, after: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of the profile's ExperienceEvents and the cursor of the next page (None on the last)."""
    order: lookup.EventOrder = "-timestamp" if descending else "timestamp"
    try:
        if located.overlaid:
            rows = lookup.page_events(_overlaid_events(located), start=start, end=end, limit=limit + 1, order=order,
                                      after=after, engine=located.engine)
        else:
            rows = lookup.get_events(located.store, located.profile_id, start=start, end=end, limit=limit + 1,
                                     order=order, after=after, engine=located.engine)
    except lookup.InvalidCursorError as exc:
        raise BadRequest(str(exc), field="start") from exc
    children = []
    for row in rows[:limit]:
        stamp = row.get("timestamp")
        entity = {k: json_value(v) for k, v in row.items() if k not in INTERNAL_COLUMNS}
        children.append({"relatedEntityId": located.profile_id, "entityId": row.get("_id"),
                         "timestamp": int(stamp.replace(tzinfo=UTC).timestamp() * 1000) if stamp else None,
                         "entity": entity})
    following = lookup.events_cursor(rows[limit - 1]) if len(rows) > limit else None
    return children, following


def erase(services: ProfileAccessServices, scope: Scope, located: Located) -> dict[str, int]:
    """Delete every fragment and event of a located profile from the lake, then queue a build.

    Files are rewritten without the records carrying any identity the profile has in the build it was
    located in (each file replaced atomically), so the identity graph shrinks and no later build can
    bring the profile back.
    """
    identities = located.engine.read_rows(located.store / IDENTITIES_FILE, "_profile_id", [located.profile_id],
                                          columns=["namespace", "id"])
    keys = sorted({f"{ns}\x1f{i}" for ns, i in zip(pc.utf8_lower(identities["namespace"]).to_pylist(),
                                                    identities["id"].to_pylist(), strict=True)})
    removed = {"fragments": 0, "events": 0, "files": 0}
    with services.uow() as uow:
        for source in uow.profile_sources.files(scope.sandbox_id):
            kept, dropped = _rewrite_without(located.engine, source.path, keys)
            if dropped:
                removed["events" if source.kind == "event" else "fragments"] += dropped
                removed["files"] += 1
                uow.profile_sources.update_file(source.path, records=kept, length=lake_files.stat(source.path)[0])
        request_build(uow.work_queue, scope.sandbox_id)
        uow.commit()
    return removed


#: Stands for the list of identity keys in :data:`_CARRIES_KEY` (replaced by a list literal).
_KEYS = "__erased_keys"
#: Whether a record's identity entries (``__entries``: a list of ``{key: namespace, value: [{id}]}``) hold one
#: of the keys: ``lower(namespace) || chr(31) || id``, as ``keys`` in :func:`erase`.
_CARRIES_KEY = expression(
    "len(list_filter(flatten(list_transform(__entries, lambda __e: list_transform(__e.value, "
    f"lambda __i: lower(__e.key) || chr(31) || __i.id))), lambda __x: list_contains({_KEYS}, __x))) > 0")


def _rewrite_without(engine: Engine, location: str, keys: list[str]) -> tuple[int, int]:
    """Rewrite the lake file at ``location`` without rows whose identityMap holds one of ``keys``; (kept, dropped)."""
    schema = lake_files.read_schema(location)
    total = lake_files.parquet_file(location).metadata.num_rows
    identity_type = schema.field("identityMap").type if "identityMap" in schema.names else None
    if identity_type is None:
        return total, 0
    identity_map = exp.column("identityMap")
    entries: exp.Expr
    if pa.types.is_map(identity_type):
        entries = exp.func("map_entries", identity_map, dialect="duckdb")
    else:  # a struct of lists (a Parquet upload may carry one): its fields are the namespaces
        entries = exp.Array(expressions=[
            exp.Struct(expressions=[
                exp.PropertyEQ(this=exp.Literal.string("key"), expression=exp.Literal.string(f.name)),
                exp.PropertyEQ(this=exp.Literal.string("value"),
                               expression=exp.Dot(this=identity_map, expression=exp.to_identifier(f.name, quoted=True))),
            ]) for f in identity_type])

    def bound(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name == "__entries":
            return entries.copy()
        if isinstance(node, exp.Column) and not node.table and node.name == _KEYS:
            return exp.Array(expressions=[exp.Literal.string(key) for key in keys])
        return node

    matches = _CARRIES_KEY.transform(bound)
    with engine.workspace() as workspace:
        workspace.register("__file", location)
        count = exp.select(exp.func("count", exp.Star()).as_("n")).from_("__file").where(matches.copy())
        dropped = int(workspace.fetch(count).column(0)[0].as_py() or 0)
        if not dropped:
            return total, 0
        table = workspace.fetch(exp.select(exp.Star()).from_("__file").where(exp.not_(matches)))
    partial = lake_files.scratch_beside(location, "erase")
    pq.write_table(table.cast(schema), partial, compression="zstd")
    lake_files.replace(location, partial)
    return total - dropped, dropped
