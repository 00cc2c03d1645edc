"""Streaming (continuous) segmentation of one profile: which continuous segments it is in now.

A definition with ``evaluationInfo.continuous.enabled`` is compiled once per version to a Python predicate
whose evaluation time is an input (``pql.to_python.compile_timed``), and evaluated over the whole merged
profile: the last build's profile row and events with the streamed records newer than that build laid over
them (``profiles/overlay.py``). What it returns goes to ``MembershipStore.apply``, which moves each pair by
the same rule as a batch job (``membership/rule.py``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from openseg.pql import parse
from openseg.pql.capabilities import event_horizon, read_fields
from openseg.pql.to_python import TimedPredicate, compile_timed
from openseg.profiles.overlay import event_time, overlay_events, overlay_profile
from openseg.segmentation.streaming_due import TimeDependence, next_change, time_dependence

#: The namespace of openseg's own segments in ``segmentMembership``.
UPS = "ups"


class Pair(Protocol):
    """A profile's membership of one segment as the membership store reads it (``membership.PairState``)."""

    @property
    def status(self) -> str: ...

    @property
    def last_qualification_time(self) -> dt.datetime: ...

    @property
    def is_in(self) -> bool:
        """Whether the profile is in the segment (``realized`` or ``existing``)."""
        ...


@dataclass(frozen=True)
class ContinuousDefinition:
    """A segment definition evaluated on every streamed message (:func:`is_streamed`)."""

    id: str
    version: int
    merge_policy_id: str
    pql: str
    #: The ids it reads with ``inSegment`` (they are evaluated before it when they are continuous too).
    dependencies: tuple[str, ...] = ()


def is_continuous(evaluation_info: Mapping[str, Any] | None) -> bool:
    """Whether a definition's ``evaluationInfo`` enables continuous (streaming) evaluation."""
    continuous = (evaluation_info or {}).get("continuous")
    return isinstance(continuous, Mapping) and continuous.get("enabled") is True


class Streamable(Protocol):
    @property
    def evaluation_info(self) -> Mapping[str, Any]: ...

    @property
    def streaming_opt_in(self) -> bool: ...


def is_streamed(definition: Streamable) -> bool:
    """Whether streaming segmentation evaluates a definition: AEP's continuous evaluation
    (``evaluationInfo.continuous.enabled``), or any shape its ``openseg:streamingOptIn`` opts in (the Python
    predicate and its due times cover every PQL shape; ``evaluationInfo`` stays AEP's answer)."""
    return is_continuous(definition.evaluation_info) or definition.streaming_opt_in


#: How many lists of definitions :meth:`CompiledSegments.ordered` keeps (a sandbox's and policy's each).
_KEPT_ORDERS = 64
#: A definition version compiled: its predicate, how it moves with time, the fields it reads, its event horizon.
_Compiled = tuple[TimedPredicate, TimeDependence | None, frozenset[str] | None, dt.timedelta | None]


@dataclass
class CompiledSegments:
    """Predicates compiled once per definition version (an edit compiles the new version once), with what of
    each follows the clock (``streaming_due.time_dependence``)."""

    _compiled: dict[tuple[str, int], _Compiled] = field(default_factory=dict)
    #: Each list of definitions in dependency order, with their predicates and time dependences (every profile of
    #: a micro-batch is evaluated for the same list: ordering it per profile was a twentieth of an evaluation).
    _ordered: dict[tuple[ContinuousDefinition, ...], list[tuple[ContinuousDefinition, _Compiled]]] = \
        field(default_factory=dict)

    def _entry(self, definition: ContinuousDefinition) -> _Compiled:
        key = (definition.id, definition.version)
        if key not in self._compiled:
            for old in [k for k in self._compiled if k[0] == definition.id]:
                del self._compiled[old]
            node = parse(definition.pql)
            self._compiled[key] = (compile_timed(node), time_dependence(node), read_fields(node), event_horizon(node))
        return self._compiled[key]

    def ordered(self, definitions: Sequence[ContinuousDefinition]) -> list[tuple[ContinuousDefinition, _Compiled]]:
        """``definitions`` in :func:`dependency_order`, each with its compiled entry (kept for the next profiles
        evaluated for the same definitions, until there are :data:`_KEPT_ORDERS` lists)."""
        key = tuple(definitions)
        found = self._ordered.get(key)
        if found is None:
            if len(self._ordered) >= _KEPT_ORDERS:
                self._ordered.clear()
            found = self._ordered[key] = [(d, self._entry(d)) for d in dependency_order(definitions)]
        return found

    def predicate(self, definition: ContinuousDefinition) -> TimedPredicate:
        return self._entry(definition)[0]

    def dependence(self, definition: ContinuousDefinition) -> TimeDependence | None:
        """How the definition's answer moves with time alone (None: it does not)."""
        return self._entry(definition)[1]

    def fields(self, definitions: Iterable[ContinuousDefinition]) -> frozenset[str] | None:
        """The top-level profile and event fields the definitions can read (``pql.capabilities.read_fields``;
        None: every field), so that readers of the profile store decode only those columns."""
        names: set[str] = set()
        for definition in definitions:
            read = self._entry(definition)[2]
            if read is None:
                return None
            names |= read
        return frozenset(names)

    def since(self, definitions: Iterable[ContinuousDefinition], at: dt.datetime) -> dt.datetime | None:
        """How old an event may be and still count for the definitions, evaluated at ``at`` or later
        (``pql.capabilities.event_horizon``; None: any age), so that readers of the profile store may leave
        older events unread. A second earlier than the horizon, for windows that include their end."""
        horizon = dt.timedelta(0)
        for definition in definitions:
            bound = self._entry(definition)[3]
            if bound is None:
                return None
            horizon = max(horizon, bound)
        return at - horizon - dt.timedelta(seconds=1)


def dependency_order(definitions: Iterable[ContinuousDefinition]) -> list[ContinuousDefinition]:
    """The definitions with every one a definition reads (``inSegment``) before it, else by id."""
    by_id = {d.id: d for d in sorted(definitions, key=lambda d: d.id)}
    ordered: list[ContinuousDefinition] = []
    placed: set[str] = set()

    def place(definition: ContinuousDefinition, path: frozenset[str]) -> None:
        if definition.id in placed or definition.id in path:
            return
        for dependency in definition.dependencies:
            if dependency in by_id:
                place(by_id[dependency], path | {definition.id})
        placed.add(definition.id)
        ordered.append(definition)

    for definition in by_id.values():
        place(definition, frozenset())
    return ordered


@dataclass(frozen=True)
class Evaluation:
    """A profile's answers at one time, and when each time-windowed answer may next change without new data
    (segment id -> instant; absent: never)."""

    answers: dict[str, bool]
    due: dict[str, dt.datetime]


def evaluate_timed(definitions: Sequence[ContinuousDefinition], compiled: CompiledSegments,
                   profile: Mapping[str, Any], events: Sequence[Mapping[str, Any]], membership: Mapping[str, Pair],
                   at: dt.datetime) -> Evaluation:
    """Whether the profile qualifies at ``at`` for each definition, in dependency order: ``inSegment`` reads
    the profile's membership with the earlier definitions' new answers in it (as a job's plan does); and
    when to look again (``streaming_due.next_change``)."""
    return _evaluated(definitions, compiled, profile, events, membership, at, timed=True)


def evaluate(definitions: Sequence[ContinuousDefinition], compiled: CompiledSegments, profile: Mapping[str, Any],
             events: Sequence[Mapping[str, Any]], membership: Mapping[str, Pair], at: dt.datetime
             ) -> dict[str, bool]:
    """:func:`evaluate_timed`'s answers only (the edge's: it has no due times to keep, and finding them took as
    long as the answers)."""
    return _evaluated(definitions, compiled, profile, events, membership, at, timed=False).answers


def _evaluated(definitions: Sequence[ContinuousDefinition], compiled: CompiledSegments,
               profile: Mapping[str, Any], events: Sequence[Mapping[str, Any]], membership: Mapping[str, Pair],
               at: dt.datetime, *, timed: bool) -> Evaluation:
    ups: dict[str, dict[str, Any]] = {s: {"status": p.status, "lastQualificationTime": p.last_qualification_time}
                                      for s, p in membership.items()}
    answers: dict[str, bool] = {}
    due: dict[str, dt.datetime] = {}
    for definition, (predicate, dependence, _, _) in compiled.ordered(definitions):
        subject = {**profile, "segmentMembership": {**(profile.get("segmentMembership") or {}), UPS: ups}}
        qualifies = predicate(subject, events, at)
        answers[definition.id] = qualifies
        if timed and (change := next_change(predicate, dependence, subject, events, at, qualifies)) is not None:
            due[definition.id] = change
        ups = {**ups, definition.id: {"status": "realized" if qualifies else "exited", "lastQualificationTime": at}}
    return Evaluation(answers, due)


__all__ = [
    "CompiledSegments",
    "ContinuousDefinition",
    "Evaluation",
    "Pair",
    "dependency_order",
    "evaluate",
    "evaluate_timed",
    "event_time",
    "is_continuous",
    "is_streamed",
    "overlay_events",
    "overlay_profile",
]
