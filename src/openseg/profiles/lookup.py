"""The read side of a built profile store: one profile, its identities, its events.

Values are always passed to DuckDB as ``?`` parameters. Every call resolves the store link once
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
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
import pyarrow as pa

from openseg.profiles._sql import render
from openseg.profiles.build import KEYS, PROFILE
from openseg.profiles.identity import identity_key
from openseg.profiles.merge import merge_query, ranked_query
from openseg.profiles.merge_policy import MergePolicySpec
from openseg.profiles.reading import PROVENANCE
from openseg.profiles.sources import IDENTITY_MAP, utc_naive
from openseg.profiles.store import (
    EVENTS_FILE,
    FRAGMENTS_FILE,
    IDENTITIES_FILE,
    PROFILES_FILE,
    read_manifest,
    resolve_store,
)

EventOrder = Literal["timestamp", "-timestamp"]
STORE_COLUMNS = ("_profile_id", "_sources", "_lastModifiedAt", "_hasProfileRecord")


class InvalidCursorError(ValueError):
    """An events paging cursor was not produced by :func:`events_cursor`."""


def _connect() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    return connection


def resolve_profile_id(store_dir: Path | str, namespace: str, identity: str) -> str | None:
    """The id of the profile an identity belongs to for segmentation and events.

    Under ``pdg`` that is the profile holding the identity; under ``none`` the profile keyed by exactly
    that identity (the fragments and events whose primary identity it is).

    Returns:
        The ``_profile_id``, or None if no profile has this identity.
    """
    store = resolve_store(store_dir)
    with _connect() as connection:
        if _identity_graph(store) == "none":
            rows = connection.execute(
                "SELECT _profile_id FROM read_parquet(?) WHERE _profile_id = ?",
                [str(store / PROFILES_FILE), identity_key(namespace, identity)],
            ).fetchall()
        else:
            rows = connection.execute(
                "SELECT _profile_id FROM read_parquet(?) WHERE id = ? AND lower(namespace) = lower(?) LIMIT 1",
                [str(store / IDENTITIES_FILE), identity, namespace],
            ).fetchall()
    return str(rows[0][0]) if rows else None


def get_profile(
    store_dir: Path | str, namespace: str, identity: str, fields: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """The merged profile found by one of its identities.

    Args:
        store_dir: The store path.
        namespace: The identity namespace (any case).
        identity: The identity value (exact).
        fields: Dotted XDM paths to return (``person.name``, ``homeAddress.country``); all when None.
            ``identityMap`` and the store columns are always returned.

    Returns:
        The merged XDM profile as a dict without null attributes, with ``identityMap``, ``_profile_id``,
        ``_sources``, ``_lastModifiedAt`` (naive UTC) and ``_hasProfileRecord``; None if not found.
    """
    store = resolve_store(store_dir)
    if _identity_graph(store) == "none":
        profile = _merge_fragments(store, identity_key(namespace, identity))
        if profile is None:
            profile_id = resolve_profile_id(store, namespace, identity)
            profile = _profile_row(store, profile_id) if profile_id else None
    else:
        profile_id = resolve_profile_id(store, namespace, identity)
        profile = _profile_row(store, profile_id) if profile_id else None
    if profile is None:
        return None
    return _project(profile, fields) if fields else profile


def get_profile_identities(store_dir: Path | str, namespace: str, identity: str) -> list[tuple[str, str]] | None:
    """Every ``(namespace, id)`` of the profile :func:`get_profile` finds, sorted by key.

    Returns:
        The identities, or None if no profile has this identity.
    """
    store = resolve_store(store_dir)
    if _identity_graph(store) == "none":
        profile = get_profile(store, namespace, identity)
        if profile is None:
            return None
        pairs = [(ns, item["id"]) for ns, items in profile[IDENTITY_MAP].items() for item in items]
        return sorted(pairs, key=lambda pair: identity_key(*pair))
    profile_id = resolve_profile_id(store, namespace, identity)
    if profile_id is None:
        return None
    with _connect() as connection:
        rows = connection.execute(
            "SELECT namespace, id FROM read_parquet(?) WHERE _profile_id = ?",
            [str(store / IDENTITIES_FILE), profile_id],
        ).fetchall()
    return sorted(((str(ns), str(i)) for ns, i in rows), key=lambda pair: identity_key(*pair))


def get_events(
    store_dir: Path | str,
    profile_id: str,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 100,
    order: EventOrder = "timestamp",
    after: str | None = None,
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

    Returns:
        Event dicts without null attributes (``timestamp`` and ``_ingestTime`` as naive UTC datetimes).

    Raises:
        ValueError: If ``limit`` or ``order`` is invalid.
        InvalidCursorError: If ``after`` is not a cursor.
    """
    if limit < 1:
        raise ValueError("limit: must be at least 1")
    if order not in ("timestamp", "-timestamp"):
        raise ValueError(f"order: {order!r} is not 'timestamp' or '-timestamp'")
    store = resolve_store(store_dir)
    conditions = ["_profile_id = ?"]
    parameters: list[object] = [str(store / EVENTS_FILE), profile_id]
    if start is not None:
        conditions.append('"timestamp" >= ?')
        parameters.append(utc_naive(start))
    if end is not None:
        conditions.append('"timestamp" < ?')
        parameters.append(utc_naive(end))
    comparison = ">" if order == "timestamp" else "<"
    if after is not None:
        moment, event_id = _decode_cursor(after)
        conditions.append(f'("timestamp" {comparison} ? OR ("timestamp" = ? AND _id {comparison} ?))')
        parameters += [moment, moment, event_id]
    direction = "ASC" if order == "timestamp" else "DESC"
    parameters.append(limit)
    # Only fixed text and the two directions above are spliced in; every value is a parameter.
    query = (
        f"SELECT * EXCLUDE (_profile_id) FROM read_parquet(?) WHERE {' AND '.join(conditions)} "
        f'ORDER BY "timestamp" {direction}, _id {direction} LIMIT ?'
    )
    with _connect() as connection:
        table = _fetch(connection, query, parameters)
    return [_without_nulls(row) for row in table.to_pylist(maps_as_pydicts="strict")]


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


def _fetch(connection: duckdb.DuckDBPyConnection, query: str, parameters: list[object]) -> pa.Table:
    return connection.sql(query, params=parameters).to_arrow_table()


def _identity_graph(store: Path) -> str:
    return str(read_manifest(store)["policy"]["identityGraph"])


def _profile_row(store: Path, profile_id: str) -> dict[str, Any] | None:
    with _connect() as connection:
        table = _fetch(
            connection,
            "SELECT * FROM read_parquet(?) WHERE _profile_id = ?",
            [str(store / PROFILES_FILE), profile_id],
        )
    rows = table.to_pylist(maps_as_pydicts="strict")
    return _without_nulls(rows[0]) if rows else None


def _merge_fragments(store: Path, key: str) -> dict[str, Any] | None:
    """Under ``identityGraph: none``: merge the fragments carrying the identity ``key``."""
    policy = MergePolicySpec.from_dict(read_manifest(store)["policy"])
    with _connect() as connection:
        fragments = _fetch(
            connection,
            "SELECT * FROM read_parquet(?) WHERE list_contains(" + KEYS + ", ?)",
            [str(store / FRAGMENTS_FILE), key],
        )
        if fragments.num_rows == 0:
            return None
        schema = pa.schema([f for f in fragments.schema if f.name not in (*PROVENANCE, KEYS)])
        connection.register("__matched", fragments.append_column(PROFILE, pa.array([key] * fragments.num_rows)))
        connection.execute("CREATE TEMP VIEW __ranked AS " + render(ranked_query("__matched", schema, policy)))
        merged = connection.sql(render(merge_query("__ranked", schema, PROFILE))).to_arrow_table()
    row = merged.to_pylist(maps_as_pydicts="strict")[0]
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
