"""The read side of a built profile store: one profile, its identities, its events.

Reads go through the engine (:mod:`openseg.engines.base`): a point lookup reads the few rows of a store file
that hold a key (``Engine.read_rows``: the row groups whose statistics can hold it, the files being sorted by
that key), and what is left to compute over those rows (an events page, a merge under ``identityGraph:
none``) is a sqlglot query the engine runs, with values as literals. Every call resolves the store link once
(:func:`openseg.profiles.store.resolve_store`), so it reads one consistent build even if a new one is
published meanwhile.

Lookup by identity follows the store's merge policy (see :mod:`openseg.profiles.identity`):

- ``pdg``: the profile holding the identity.
- ``none``: the merge of the fragments that carry exactly that identity (contract, "Decisions"), merged
  on demand from ``fragments.parquet``; an identity no fragment carries finds the event-only profile
  keyed by it, if any.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
from sqlglot import exp

from openseg.arrow_rows import python_rows
from openseg.profiles._sql import DIALECT, col, string
from openseg.profiles.build import KEYS, PROFILE
from openseg.profiles.keys import identity_key, identity_pairs
from openseg.profiles.merge import merge_query, ranked_query
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.overlay import BuiltFragment, Reach, record_anchor
from openseg.profiles.reading import DATASET, INGEST, PROVENANCE, RID
from openseg.profiles.sources import IDENTITY_MAP, utc_naive
from openseg.profiles.store import (
    FRAGMENTS_FILE,
    IDENTITIES_FILE,
    MANIFEST_FILE,
    PROFILES_FILE,
    event_files,
    read_manifest,
    resolve_store,
)

if TYPE_CHECKING:
    from openseg.engines.base import Engine

EventOrder = Literal["timestamp", "-timestamp"]
STORE_COLUMNS = ("_profile_id", "_sources", "_lastModifiedAt", "_hasProfileRecord")
#: The relation the rows read for one lookup are registered as, for the query over them.
_ROWS = "__rows"
#: The position of an event in the list :func:`page_events` pages.
_ROW = "__n"


class InvalidCursorError(ValueError):
    """An events paging cursor was not produced by :func:`events_cursor`."""


def resolve_profile_id(store_dir: Path | str, namespace: str, identity: str, *, engine: Engine) -> str | None:
    """The id of the profile an identity belongs to for segmentation and events.

    Under ``pdg`` that is the profile holding the identity; under ``none`` the profile keyed by exactly
    that identity (the fragments and events whose primary identity it is).

    Args:
        store_dir: The store path.
        namespace: The identity namespace (any case).
        identity: The identity value (exact).
        engine: The engine that reads the store.

    Returns:
        The ``_profile_id``, or None if no profile has this identity.
    """
    return profile_id_in(resolve_store(store_dir), namespace, identity, engine=engine)


def profile_id_in(build: Path, namespace: str, identity: str, *, engine: Engine) -> str | None:
    """:func:`resolve_profile_id` in a build directory :func:`~openseg.profiles.store.resolve_store` gave
    already (streaming resolves its build once per micro-batch, then an identity per message)."""
    return profile_ids_in(build, [(namespace, identity)], engine=engine)[(namespace, identity)]


def profile_ids_in(build: Path, pairs: Sequence[tuple[str, str]], *,
                   engine: Engine) -> dict[tuple[str, str], str | None]:
    """:func:`profile_id_in` of each ``(namespace, identity)`` pair, in one read of the store (a micro-batch
    resolves its messages' identities together: one lookup of 300 keys reads each row group once)."""
    if not pairs:
        return {}
    if _identity_graph(build) == "none":
        keys = {pair: identity_key(*pair) for pair in pairs}
        rows = engine.read_rows(build / PROFILES_FILE, "_profile_id", sorted(set(keys.values())),
                                columns=["_profile_id"])
        present = {str(key) for key in rows["_profile_id"].to_pylist()}
        return {pair: key if key in present else None for pair, key in keys.items()}
    # identities.parquet is sorted by id: the row groups holding them are read, and the namespaces of the few rows
    # with each id compared here (four Arrow calls cost more than the lookup's read of a kept group).
    rows = engine.read_rows(build / IDENTITIES_FILE, "id", sorted({identity for _, identity in pairs}),
                            columns=["id", "namespace", "_profile_id"])
    found: dict[tuple[str, str], str] = {}
    for identity, namespace, profile_id in zip(rows["id"].to_pylist(), rows["namespace"].to_pylist(),
                                               rows["_profile_id"].to_pylist(), strict=True):
        found.setdefault((str(namespace).lower(), str(identity)), str(profile_id))
    return {pair: found.get((pair[0].lower(), pair[1])) for pair in pairs}


def get_profile(
    store_dir: Path | str, namespace: str, identity: str, fields: Sequence[str] | None = None, *, engine: Engine,
    profile_id: str | None = None,
) -> dict[str, Any] | None:
    """The merged profile found by one of its identities.

    Args:
        store_dir: The store path.
        namespace: The identity namespace (any case).
        identity: The identity value (exact).
        fields: Dotted XDM paths to return (``person.name``, ``homeAddress.country``); all when None.
            ``identityMap`` and the store columns are always returned.
        engine: The engine that reads the store.
        profile_id: What :func:`resolve_profile_id` found for the identity in this store, when the caller
            knows it already (saves reading the identities again).

    Returns:
        The merged XDM profile as a dict without null attributes, with ``identityMap``, ``_profile_id``,
        ``_sources``, ``_lastModifiedAt`` (naive UTC) and ``_hasProfileRecord``; None if not found.
    """
    store = resolve_store(store_dir)
    profile = None
    if _identity_graph(store) == "none":
        profile = _merge_fragments(store, identity_key(namespace, identity), engine)
    if profile is None:
        found = profile_id if profile_id is not None else profile_id_in(store, namespace, identity, engine=engine)
        profile = _profile_row(store, found, engine) if found else None
    if profile is None:
        return None
    return _project(profile, fields) if fields else profile


def get_profile_identities(store_dir: Path | str, namespace: str, identity: str, *,
                           engine: Engine) -> list[tuple[str, str]] | None:
    """Every ``(namespace, id)`` of the profile :func:`get_profile` finds, sorted by key.

    Returns:
        The identities, or None if no profile has this identity.
    """
    store = resolve_store(store_dir)
    if _identity_graph(store) == "none":
        profile = get_profile(store, namespace, identity, engine=engine)
        if profile is None:
            return None
        pairs = [(ns, item["id"]) for ns, items in profile[IDENTITY_MAP].items() for item in items]
        return sorted(pairs, key=lambda pair: identity_key(*pair))
    profile_id = profile_id_in(store, namespace, identity, engine=engine)
    if profile_id is None:
        return None
    # The profile's identityMap is its graph's identities (the build writes it from them). It is read from
    # profiles.parquet, sorted by _profile_id (one row group), not from identities.parquet, sorted by id, where
    # a profile's rows could be in any group.
    # Every column: the lookup that follows (the profile's row) then finds the group decoded.
    rows = engine.read_rows(store / PROFILES_FILE, "_profile_id", [profile_id])
    return identity_pairs(python_rows(rows)[0] if rows.num_rows else {})


def get_events(
    store_dir: Path | str,
    profile_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
    order: EventOrder = "timestamp",
    after: str | None = None,
    *,
    engine: Engine,
) -> list[dict[str, Any]]:
    """The ExperienceEvents of one profile, one page at a time.

    Args:
        store_dir: The store path.
        profile_id: The profile (see :func:`resolve_profile_id`).
        start: Only events at or after this time (naive means UTC).
        end: Only events before this time.
        limit: The page size (at least 1).
        order: ``"timestamp"`` (oldest first) or ``"-timestamp"`` (newest first); ties by ``_id``.
        after: The cursor of the previous page's last event (:func:`events_cursor`).
        engine: The engine that reads the store.

    Returns:
        Event dicts without null attributes (``timestamp`` and ``_ingestTime`` as naive UTC datetimes).

    Raises:
        ValueError: If ``limit`` or ``order`` is invalid.
        InvalidCursorError: If ``after`` is not a cursor.
    """
    query = _page_query(start, end, limit, order, after)
    store = resolve_store(store_dir)
    events = _event_rows(store, [profile_id], engine)
    page = engine.run(query, {_ROWS: events.drop_columns(["_profile_id"])})
    return [_without_nulls(row) for row in python_rows(page)]


def events_of(store_dir: Path | str, profile_ids: Sequence[str], *, engine: Engine) -> list[dict[str, Any]]:
    """Every ExperienceEvent of the profiles (as :func:`get_events` gives them), in no particular order."""
    rows = _event_rows(resolve_store(store_dir), profile_ids, engine)
    return [_without_nulls(row) for row in python_rows(rows.drop_columns(["_profile_id"]))]


def _event_rows(store: Path, profile_ids: Sequence[str], engine: Engine) -> pa.Table:
    """The rows of ``profile_ids`` in every file of the store's events (:func:`event_files`)."""
    return pa.concat_tables([engine.read_rows(path, "_profile_id", list(profile_ids)) for path in event_files(store)])


def page_events(events: Sequence[dict[str, Any]], start: datetime | None = None, end: datetime | None = None,
                limit: int = 100, order: EventOrder = "timestamp", after: str | None = None, *,
                engine: Engine) -> list[dict[str, Any]]:
    """The page of ``events`` (dicts with a naive UTC ``timestamp`` and an ``_id``) that :func:`get_events` would
    give of a store holding them: the same query, over their times and ids."""
    keys = pa.table({"timestamp": pa.array([e.get("timestamp") for e in events], pa.timestamp("us")),
                     "_id": pa.array([e.get("_id") for e in events], pa.string()),
                     _ROW: pa.array(range(len(events)), pa.int64())})
    page = engine.run(_page_query(start, end, limit, order, after), {_ROWS: keys})
    return [dict(events[i]) for i in page.column(_ROW).to_pylist()]


def _page_query(start: datetime | None, end: datetime | None, limit: int, order: EventOrder,
                after: str | None) -> exp.Select:
    if limit < 1:
        raise ValueError("limit: must be at least 1")
    if order not in ("timestamp", "-timestamp"):
        raise ValueError(f"order: {order!r} is not 'timestamp' or '-timestamp'")
    moment = exp.column("timestamp", quoted=True)
    conditions: list[exp.Expr] = []
    if start is not None:
        conditions.append(moment >= _timestamp(utc_naive(start)))
    if end is not None:
        conditions.append(moment < _timestamp(utc_naive(end)))
    later = exp.GT if order == "timestamp" else exp.LT
    if after is not None:
        at, event_id = _decode_cursor(after)
        conditions.append(exp.or_(later(this=moment, expression=_timestamp(at)),
                                  exp.and_(moment.eq(_timestamp(at)),
                                           later(this=col("_id"), expression=string(event_id)))))
    descending = order == "-timestamp"
    query = exp.select(exp.Star()).from_(_ROWS)
    if conditions:
        query = query.where(*conditions)
    return query.order_by(exp.Ordered(this=moment, desc=descending),
                          exp.Ordered(this=col("_id"), desc=descending)).limit(limit)


def events_cursor(event: dict[str, Any]) -> str:
    """The cursor continuing a page after ``event`` (an item :func:`get_events` returned)."""
    payload = json.dumps([event["timestamp"].isoformat(), event.get("_id")])
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        moment, event_id = json.loads(base64.urlsafe_b64decode(padded.encode()).decode())
        return datetime.fromisoformat(moment), str(event_id)
    except (ValueError, TypeError) as error:
        raise InvalidCursorError(f"not an events cursor: {cursor!r}") from error


def _timestamp(moment: datetime) -> exp.Expr:
    """A naive (UTC) ``TIMESTAMP`` literal, to the microsecond."""
    return exp.cast(exp.Literal.string(moment.isoformat(sep=" ")), exp.DataType.build("TIMESTAMP"))


def identity_graph(store_dir: Path | str) -> str:
    """The ``identityGraph`` of the policy the store was built with (``pdg`` or ``none``)."""
    return _identity_graph(resolve_store(store_dir))


def _identity_graph(store: Path) -> str:
    # Read once per version of the build's manifest (a published build never changes it).
    return _graph_of_manifest(store, (store / MANIFEST_FILE).stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _graph_of_manifest(store: Path, _mtime_ns: int) -> str:
    return str(read_manifest(store)["policy"]["identityGraph"])


def _profile_row(store: Path, profile_id: str, engine: Engine) -> dict[str, Any] | None:
    rows = python_rows(engine.read_rows(store / PROFILES_FILE, "_profile_id", [profile_id]))
    return _without_nulls(rows[0]) if rows else None


def precedence(store_dir: Path | str) -> tuple[str, ...]:
    """The dataset order the overlay ranks streamed fragments by (``overlay.ranked_profile``): the store's
    ``dataSetPrecedence`` order when it keeps its fragments; empty otherwise (``timestampOrdered``, or a store
    built before it kept them, where the overlay lays streamed fragments over the built rows until it is rebuilt)."""
    store = resolve_store(store_dir)
    policy = MergePolicySpec.from_dict(read_manifest(store)["policy"])
    if policy.attribute_merge != "dataSetPrecedence" or not (store / FRAGMENTS_FILE).is_file():
        return ()
    return policy.dataset_order


def built_fragments(store_dir: Path | str, keys: Sequence[str], *, engine: Engine) -> list[BuiltFragment]:
    """The store's unmerged fragments carrying one of the identity ``keys``, in the build's ingest order (empty
    when the store keeps none: ``store.keeps_fragments``)."""
    store = resolve_store(store_dir)
    if not keys or not (store / FRAGMENTS_FILE).is_file():
        return []
    carrying = exp.func("list_has_any", col(KEYS), exp.Array(expressions=[string(k) for k in keys]), dialect=DIALECT)
    with engine.workspace() as workspace:
        workspace.register("__fragments", str(store / FRAGMENTS_FILE))
        rows = workspace.fetch(exp.select(exp.Star()).from_("__fragments").where(carrying).order_by(col(RID)))
    return [BuiltFragment(row.pop(DATASET), utc_naive(row.pop(INGEST)), row.pop(RID),
                          {k: v for k, v in row.items() if k != KEYS})
            for row in python_rows(rows)]


def parts_fragments(found: Reach, store_dir: Path | str, engine: Engine) -> list[BuiltFragment]:
    """The built fragments of the profiles ``found`` spans: under ``identityGraph: pdg`` those anchored in them
    (a record belongs to its anchor's graph), under ``none`` those carrying the identity."""
    keys = sorted({identity_key(*pair) for part in found.parts for pair in part.identities})
    fragments = built_fragments(store_dir, keys, engine=engine)
    if not found.stitched:
        return fragments
    wanted = set(keys)
    return [f for f in fragments if record_anchor(f.record) in wanted]


def _merge_fragments(store: Path, key: str, engine: Engine) -> dict[str, Any] | None:
    """Under ``identityGraph: none``: merge the fragments carrying the identity ``key``."""
    policy = MergePolicySpec.from_dict(read_manifest(store)["policy"])
    carrying = exp.func("list_contains", col(KEYS), string(key), dialect=DIALECT)
    with engine.workspace() as workspace:
        workspace.register("__fragments", str(store / FRAGMENTS_FILE))
        fragments = workspace.fetch(exp.select(exp.Star()).from_("__fragments").where(carrying))
        if fragments.num_rows == 0:
            return None
        schema = pa.schema([f for f in fragments.schema if f.name not in (*PROVENANCE, KEYS)])
        workspace.register("__matched", fragments.append_column(PROFILE, pa.array([key] * fragments.num_rows)))
        workspace.define("__ranked", ranked_query("__matched", schema, policy))
        merged = workspace.fetch(merge_query("__ranked", schema, PROFILE))
    row = python_rows(merged)[0]
    identity_maps = fragments.column(IDENTITY_MAP).to_pylist(maps_as_pydicts="strict")
    profile: dict[str, Any] = {"_profile_id": key}
    for name in schema.names:
        profile[name] = _union_identities(identity_maps) if name == IDENTITY_MAP else row[name]
    profile.update(_sources=row["_sources"], _lastModifiedAt=row["_lastModifiedAt"], _hasProfileRecord=True)
    result: dict[str, Any] = _without_nulls(profile)
    return result


def _union_identities(
    identity_maps: list[dict[str, list[dict[str, Any]]] | None],
) -> dict[str, list[dict[str, Any]]]:
    """The union of fragments' identity maps, one spelling per namespace, ids sorted."""
    spelling: dict[str, str] = {}
    primary: dict[tuple[str, str], bool] = {}
    for identity_map in identity_maps:
        for namespace, items in (identity_map or {}).items():
            lowered = namespace.lower()
            spelling[lowered] = min(spelling.get(lowered, namespace), namespace)
            for item in items or ():
                if item.get("id"):
                    known = primary.get((lowered, item["id"]), False)
                    primary[(lowered, item["id"])] = known or bool(item.get("primary"))
    union: dict[str, list[dict[str, Any]]] = {}
    for (lowered, identity), is_primary in sorted(primary.items()):
        union.setdefault(spelling[lowered], []).append({"id": identity, "primary": is_primary})
    return dict(sorted(union.items()))


def _without_nulls(value: Any) -> Any:
    """XDM JSON omits absent attributes: drop null struct fields, recursively."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def without_nulls(value: Any) -> Any:
    """XDM JSON omits absent attributes: ``value`` without null struct fields, recursively."""
    return _without_nulls(value)


def project(profile: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only the requested dotted paths (and the identity map and store columns)."""
    return _project(profile, fields)


def _project(profile: dict[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Keep only the requested dotted paths (and the identity map and store columns)."""
    kept: dict[str, Any] = {k: profile[k] for k in (*STORE_COLUMNS, IDENTITY_MAP) if k in profile}
    for path in fields:
        parts = [p for p in path.strip().split(".") if p]
        source: Any = profile
        for part in parts:
            if not isinstance(source, dict) or part not in source:
                source = None
                break
            source = source[part]
        if not parts or source is None:
            continue
        target = kept
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = source
    return kept
