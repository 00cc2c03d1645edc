"""Streamed records a profile build does not hold yet, laid over the build: the one merge of the overlay.

A message acknowledged by ``POST /collection`` is in the durable stream log at once, in the lake after the next
flush and in the merged profile store after the refresh that follows. Until a build holds it (its ``seq`` is
above the build's watermark, the highest ``openseg:streamSeq.last`` of the streamed batches it read),
readers lay it over the build's profile: profile access (``profiles/entities.py``), streaming segmentation
(``streaming/segmenter.py``) and the edge read it through this module, from the log (durable state, so another
process's acknowledgement is seen as soon as it is acknowledged).

:func:`reach` finds what belongs to one profile: the log's records carrying one of its identities, the identities
those records add, the built profiles holding those identities (a record carrying an e-mail of one profile and
an ECID of another links them, as the next build will), and so on until nothing new is found. Under
``identityGraph: pdg`` the result is keyed by its smallest identity key, as a build keys it, and the links are
made as a build makes them under the 50-identity guardrail (``profiles/identity.py``): the built profiles are
the graphs the build's replay left, and the streamed records, ingested after them, are replayed over them in log
order, each linking its identities to its anchor's graph only while the two hold at most 50 identities.

:func:`overlay_profile` is the merge rule (a null never overrides, objects merge field by field, identity maps
unite, the newer record wins); :func:`merged_profile` applies it to the built rows reached and the streamed
fragments, oldest first, which is what ``timestampOrdered`` makes of records ingested after every built one.
Under ``dataSetPrecedence`` it ranks the streamed fragments among the build's unmerged ones as the build ranks
fragments (``profiles/merge.py``: the dataset's place in the order, then the time, then ingest order) and takes
each attribute from the strongest fragment holding it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from openseg.profiles.keys import MAX_GRAPH_IDENTITIES, identity_key

PROFILE, EVENT = "profile", "event"
_EPOCH = dt.datetime(1970, 1, 1)
#: The ingest time of a streamed record no build holds: after every built one (the flush is to come).
_UNBUILT = dt.datetime.max
#: The columns a build adds to a profile row beside its XDM attributes (``lookup.STORE_COLUMNS`` and the primary
#: identity's namespace).
_STORE_COLUMNS = ("_profile_id", "_sources", "_lastModifiedAt", "_hasProfileRecord", "_primaryNamespace")
#: ``extSourceSystemAudit.lastUpdatedDate``: a fragment's time under the merge rule, when it has one.
_LAST_UPDATED = ("extSourceSystemAudit", "lastUpdatedDate")


@dataclass(frozen=True)
class BuiltFragment:
    """A profile fragment as a build read it (``fragments.parquet``): its dataset, ingest time (naive UTC), record
    id (the build's ingest order) and record."""

    dataset_id: str
    ingest_time: dt.datetime
    rid: int
    record: dict[str, Any]


def record_identities(record: Mapping[str, Any]) -> list[tuple[str, str]]:
    """A record's ``(namespace, id)`` pairs (namespace lower-cased), its primary identities first, each group
    by key (so the first is the record's anchor, as a build takes it, when it has a primary one)."""
    found: list[tuple[bool, str, str, str]] = []
    for namespace, entries in (record.get("identityMap") or {}).items():
        for entry in entries or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                found.append((not entry.get("primary"), identity_key(namespace, entry["id"]), namespace.lower(),
                              entry["id"]))
    return [(namespace, identity) for _, _, namespace, identity in sorted(found)]


def record_anchor(record: Mapping[str, Any]) -> str | None:
    """A record's anchor key, as a build takes it: its smallest primary key, else its smallest key."""
    primary, every = [], []
    for namespace, entries in (record.get("identityMap") or {}).items():
        for entry in entries or []:
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str) and entry["id"] and namespace:
                key = identity_key(namespace, entry["id"])
                every.append(key)
                if entry.get("primary") is True:
                    primary.append(key)
    return min(primary or every, default=None)


def _merged(base: Any, fragment: Any) -> Any:
    """``fragment`` laid over ``base``: objects merge field by field, a missing or null value never overrides,
    anything else replaces (as the merge of the profile store does for the newer fragment)."""
    if isinstance(base, Mapping) and isinstance(fragment, Mapping):
        result = dict(base)
        for key, value in fragment.items():
            if value is not None:
                result[key] = _merged(base.get(key), value)
        return result
    return base if fragment is None else fragment


def _identity_map(base: Any, fragment: Any) -> dict[str, list[Any]]:
    """The union of two identity maps, each identity once."""
    result: dict[str, list[Any]] = {}
    for source in (base, fragment):
        for namespace, identities in (source or {}).items():
            known = result.setdefault(namespace, [])
            for identity in identities or []:
                if all(existing.get("id") != identity.get("id") for existing in known):
                    known.append(identity)
    return result


def overlay_profile(row: Mapping[str, Any] | None, fragments: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The merged profile: the build's row with the streamed profile fragments laid over it, oldest first."""
    profile: dict[str, Any] = dict(row or {})
    for fragment in fragments:
        identities = _identity_map(profile.get("identityMap"), fragment.get("identityMap"))
        profile = _merged(profile, fragment)
        if identities:
            profile["identityMap"] = identities
    return profile


def event_time(event: Mapping[str, Any]) -> dt.datetime | None:
    """An event's ``timestamp`` as a UTC instant (streamed records carry RFC 3339 text)."""
    value = event.get("timestamp")
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return None


def overlay_events(events: Sequence[Mapping[str, Any]], streamed: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The build's events and the streamed ones newer than it, each ``_id`` once (the streamed copy wins),
    oldest first, timestamps as instants."""
    by_id: dict[Any, dict[str, Any]] = {}
    anonymous: list[dict[str, Any]] = []
    for event in [*events, *streamed]:
        typed = {**event, "timestamp": event_time(event)}
        if event.get("_id") is None:
            anonymous.append(typed)
        else:
            by_id[event["_id"]] = typed
    merged = [*by_id.values(), *anonymous]
    return sorted(merged, key=lambda e: e["timestamp"] or dt.datetime.min.replace(tzinfo=dt.UTC))


class StreamedEntry(Protocol):
    """A logged message's entry as the overlay reads it (``streaming.model.LogEntry``)."""

    @property
    def dataset_id(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def record(self) -> dict[str, Any]: ...

    @property
    def received_ms(self) -> int: ...

    @property
    def problems(self) -> tuple[tuple[str, str], ...]: ...


class StreamedMessage(Protocol):
    """A logged message (``streaming.model.LoggedMessage``)."""

    @property
    def seq(self) -> int: ...

    @property
    def entry(self) -> StreamedEntry: ...


class StreamedRecords(Protocol):
    """The stream log, as the overlay reads it (``store/stream_log.py``): messages by the identities they carry."""

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> Sequence[StreamedMessage]:
        """The sandbox's messages with ``after < seq <= through`` (no upper bound when None) whose record
        carries one of the identity ``keys`` (:func:`identity_key`), oldest first."""
        ...


@dataclass(frozen=True)
class Part:
    """A profile of the build that streamed records reach: its id and every identity the build gives it."""

    profile_id: str
    identities: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reach:
    """What belongs to one profile beyond its build: the built profiles it spans and the streamed messages.

    Attributes:
        profile_id: Its id as the next build will key it (pdg: the smallest identity key).
        identities: Every ``(namespace, id)`` reached, by key.
        parts: The built profiles it spans, by id (two or more: streamed records linked them).
        messages: The streamed messages newer than the build, in log order.
        stitched: Whether identities are stitched into graphs (``identityGraph: pdg``), so the profile's
            ``identityMap`` is its graph's identities, as a build writes it.
    """

    profile_id: str
    identities: tuple[tuple[str, str], ...]
    parts: tuple[Part, ...]
    messages: tuple[StreamedMessage, ...]
    stitched: bool = False

    @property
    def fragments(self) -> list[dict[str, Any]]:
        return [m.entry.record for m in self.messages if m.entry.kind == PROFILE]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [m.entry.record for m in self.messages if m.entry.kind == EVENT]

    @property
    def linked(self) -> bool:
        """Whether streamed records change which profile this is (a new id, or built profiles merged)."""
        return [p.profile_id for p in self.parts] != [self.profile_id]


def reach(records: StreamedRecords, sandbox_id: str, identities: Sequence[tuple[str, str]], watermark: int, *,
          part_of: Callable[[str, str], Part | None], is_source: Callable[[str], bool],
          through: int | None = None, linked: bool = True) -> Reach:
    """The profile holding ``identities`` once the streamed records newer than the build are laid over it.

    Args:
        records: The stream log.
        sandbox_id: The sandbox whose messages count.
        identities: Where to start: ``(namespace, id)`` pairs, the asked or the streamed identity first.
        watermark: The build's watermark (messages up to it are in the build).
        part_of: The built profile holding an identity (None: the build has none).
        is_source: Whether a dataset feeds profile builds (messages of other datasets are not the profile's).
        through: Read the log up to this ``seq`` only (a consumer's micro-batch end).
        linked: Follow the identities records add (``identityGraph: pdg``); False under ``none``, where a profile
            is the records carrying exactly its identity.
    """
    keys: dict[str, tuple[str, str]] = {}
    parts: dict[str, Part] = {}
    messages: dict[int, StreamedMessage] = {}
    sources: dict[str, bool] = {}
    frontier = list(identities) if linked else list(identities[:1])
    placed: set[str] = set()  # the keys whose built profile is known (a part's own identities)
    while frontier:
        new = {identity_key(*pair): pair for pair in frontier if identity_key(*pair) not in keys}
        keys.update(new)
        frontier = []
        for key, (namespace, identity) in new.items():
            if key in placed:
                continue
            part = part_of(namespace, identity)
            if part is not None and part.profile_id not in parts:
                parts[part.profile_id] = part
                placed.update(identity_key(*pair) for pair in part.identities)
                frontier += part.identities if linked else []
        for message in records.carrying(sandbox_id, list(new), watermark, through):
            entry = message.entry
            if message.seq in messages or entry.problems or entry.kind not in (PROFILE, EVENT):
                continue
            if entry.dataset_id not in sources:
                sources[entry.dataset_id] = is_source(entry.dataset_id)
            if sources[entry.dataset_id]:
                messages[message.seq] = message
                frontier += record_identities(entry.record) if linked else []
        if not linked:
            break
    if not linked:
        profile_id = next(iter(parts)) if parts else min(keys)
        return Reach(profile_id, tuple(pair for _, pair in sorted(keys.items())),
                     tuple(parts[p] for p in sorted(parts)), tuple(messages[s] for s in sorted(messages)))
    graph = _graph_of(identity_key(*identities[0]), parts.values(), [messages[s] for s in sorted(messages)])
    return Reach(min(graph), tuple(keys[k] for k in sorted(graph) if k in keys),
                 tuple(parts[p] for p in sorted(parts) if parts[p].profile_id in graph),
                 tuple(messages[s] for s in sorted(messages) if record_anchor(messages[s].entry.record) in graph),
                 stitched=True)


def _graph_of(start: str, parts: Collection[Part], messages: Sequence[StreamedMessage]) -> set[str]:
    """The identity keys of ``start``'s graph once ``messages`` are replayed over the built ``parts`` as a build
    replays records (``identity.split_oversized``): each record links its identities, in ascending key order, to
    its anchor's graph when the two together hold at most 50 identities. A built profile is one graph (the
    build's replay of the records it holds left it so); the streamed records come after them in ingest order."""
    parent: dict[str, str] = {}
    size: dict[str, int] = {}

    def find(key: str) -> str:
        if key not in parent:
            parent[key], size[key] = key, 1
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for part in parts:
        members = {identity_key(*pair) for pair in part.identities} | {part.profile_id}
        root = min(members)
        parent.update((key, root) for key in members)
        size[root] = len(members)
    for message in messages:
        anchor = record_anchor(message.entry.record)
        if anchor is None:
            continue
        for key in sorted(identity_key(*pair) for pair in record_identities(message.entry.record)):
            a, b = find(anchor), find(key)
            if a != b and size[a] + size[b] <= MAX_GRAPH_IDENTITIES:
                low, high = min(a, b), max(a, b)
                parent[high] = low
                size[low] += size[high]
    root = find(start)
    return {key for key in list(parent) if find(key) == root}


def _moment(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
    return _EPOCH


def graph_identity_map(found: Reach, built: Sequence[Mapping[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The ``identityMap`` a build gives the profile of ``found`` under ``identityGraph: pdg``: every identity of
    its graph carried by its built rows or streamed records (fragments and events), each once as ``{id,
    primary}`` (primary when any record marks it so), ids in order, a namespace in its smallest spelling."""
    wanted = {identity_key(*pair) for pair in found.identities}
    spellings: dict[str, str] = {}
    primary: dict[tuple[str, str], bool] = {}
    for identity_map in [*(r.get("identityMap") for r in built), *(m.entry.record.get("identityMap")
                                                                    for m in found.messages)]:
        for namespace, entries in (identity_map or {}).items():
            for entry in entries or []:
                if not (isinstance(entry, Mapping) and isinstance(entry.get("id"), str)) \
                        or identity_key(namespace, entry["id"]) not in wanted:
                    continue
                lowered = namespace.lower()
                spellings[lowered] = min(spellings.get(lowered, namespace), namespace)
                primary[(lowered, entry["id"])] = primary.get((lowered, entry["id"]), False) or entry.get("primary") is True
    result: dict[str, list[dict[str, Any]]] = {}
    for (lowered, identity), is_primary in sorted(primary.items()):
        result.setdefault(spellings[lowered], []).append({"id": identity, "primary": is_primary})
    return result


def _last_updated(record: Mapping[str, Any], *, text: bool) -> dt.datetime | None:
    """A fragment's ``extSourceSystemAudit.lastUpdatedDate``. A build ranks by it where its files hold it as a
    timestamp; a streamed record holds RFC 3339 text (``text``), which its flushed batch types as one."""
    value: Any = record
    for name in _LAST_UPDATED:
        value = value.get(name) if isinstance(value, Mapping) else None
    if isinstance(value, str) and text:
        try:
            value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return _moment(value) if isinstance(value, dt.datetime) else None


def ranked_profile(order: Sequence[str], built: Sequence[BuiltFragment],
                   streamed: Sequence[StreamedMessage]) -> dict[str, Any]:
    """The attributes (no ``identityMap``) a ``dataSetPrecedence`` build merges of ``built`` and ``streamed``
    fragments: each from the strongest fragment holding it, by the dataset's place in ``order`` (unlisted ones
    last), then ``extSourceSystemAudit.lastUpdatedDate`` or else the ingest time, then the ingest time, then
    ingest order (``profiles/merge.py``). Streamed fragments are ingested after every built one, in log order."""
    tiers = {dataset_id: len(order) - position for position, dataset_id in enumerate(order)}
    ranked: list[tuple[tuple[int, dt.datetime, dt.datetime, int], Mapping[str, Any]]] = []
    for fragment in built:
        moment = _last_updated(fragment.record, text=False) or fragment.ingest_time
        ranked.append(((tiers.get(fragment.dataset_id, 0), moment, fragment.ingest_time, fragment.rid),
                       fragment.record))
    for message in streamed:
        moment = _last_updated(message.entry.record, text=True) or _UNBUILT
        ranked.append(((tiers.get(message.entry.dataset_id, 0), moment, _UNBUILT, message.seq), message.entry.record))
    profile: dict[str, Any] = {}
    for _, record in sorted(ranked, key=lambda item: item[0]):
        profile = _merged(profile, {k: v for k, v in record.items() if k != "identityMap"})
    return profile


def merged_profile(found: Reach, rows: Sequence[Mapping[str, Any] | None], *, precedence: Sequence[str] = (),
                   fragments: Sequence[BuiltFragment] = ()) -> dict[str, Any]:
    """The profile of ``found``: the built rows of its parts (the least recently modified first) with its streamed
    fragments laid over them, oldest first, by :func:`overlay_profile`; the store's columns as a build sets them
    (``_sources`` united, ``_lastModifiedAt`` the newest, ``_profile_id`` the reach's).

    Under ``dataSetPrecedence`` (``precedence``: its dataset order) the attributes are :func:`ranked_profile` of
    the parts' built ``fragments`` and the streamed ones instead."""
    built = sorted((r for r in rows if r is not None), key=lambda r: _moment(r.get("_lastModifiedAt")))
    streamed = [m for m in found.messages if m.entry.kind == PROFILE]
    profile = overlay_profile(built[0] if built else None, [*built[1:], *(m.entry.record for m in streamed)])
    if precedence and streamed:
        identity_map = profile.get("identityMap")
        profile = {**{k: v for k, v in profile.items() if k in _STORE_COLUMNS},
                   **ranked_profile(precedence, fragments, streamed)}
        if identity_map is not None:
            profile["identityMap"] = identity_map
    if found.stitched:
        profile["identityMap"] = graph_identity_map(found, built)
    sources = {s for r in built for s in r.get("_sources") or ()} | {m.entry.dataset_id for m in streamed}
    modified = [_moment(r.get("_lastModifiedAt")) for r in built]
    modified += [_EPOCH + dt.timedelta(milliseconds=m.entry.received_ms) for m in streamed]
    profile.update(_profile_id=found.profile_id, _sources=sorted(sources),
                   _hasProfileRecord=bool(streamed) or any(r.get("_hasProfileRecord") for r in built))
    if modified:
        profile["_lastModifiedAt"] = max(modified)
    return profile


__all__ = [
    "EVENT",
    "PROFILE",
    "Part",
    "Reach",
    "StreamedRecords",
    "event_time",
    "merged_profile",
    "overlay_events",
    "overlay_profile",
    "reach",
    "record_identities",
]
