"""The Edge Network Server API: ``/ee/v2/interact`` (edge segmentation of one event's profile) and
``/ee/v2/collect`` (events, no answer), configured by a datastream.

``interact`` evaluates the definitions with ``evaluationInfo.synchronous.enabled`` of the datastream's merge
policy over the profile as the last profile build holds it with the stream log's messages that build does not
hold laid over it (``profiles/overlay.py``, as profile access and streaming segmentation read it, so a fragment
streamed a moment ago counts), its membership (for ``inSegment``) and the incoming event, at the clock's
time, with the same compiled predicates and dependency order as streaming segmentation
(``segmentation/streaming.py``): a segment that is both synchronous and continuous
gets the answer the streamer will write once it reads the event. The answer is AEP's ``activation:pull``
handle (``help/destinations/ui/activate-edge-profile-lookup.md``). Both routes then append their events to
the stream log, so they are durable when answered and reach the dataset, the profile store and streaming
segmentation like any streamed message.

Errors are the Edge Network's problem details (``help/server-api/error-handling.md``): ``type``
``https://ns.adobe.com/aep/errors/EXEG-<code>-<status>``, ``status``, ``title``, ``detail`` and ``report``
(``requestId``, ``orgId``, ``configId``). The codes AEP is seen to use are kept: ``EXEG-0003-400`` "Invalid
datastream ID" (Adobe's Edge SDK tests against the live Edge Network), ``EXEG-0306-400`` "No primary identity
set in request (event)" (``help/server-api/visitor-identification-fpid.md``); the others are openseg's.
"""

from __future__ import annotations

import datetime as dt
import itertools
import os
import threading
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

from openseg.catalog.validation import typed_record, validate_record
from openseg.errors import OpensegError
from openseg.profiles.overlay import Part, Reach, overlay_events, reach
from openseg.segmentation.streaming import CompiledSegments, ContinuousDefinition, Pair, evaluate
from openseg.streaming.datastreams import Datastream
from openseg.streaming.model import DatasetInfo, LogEntry
from openseg.streaming.ports import BaseProfile, StreamLog
from openseg.streaming.segmenter import overlaid

EVENT = "event"
#: The handle an edge segmentation answer is in, and its payload's type.
ACTIVATION_PULL, PROFILE_LOOKUP = "activation:pull", "profileLookup"
#: The namespace of openseg's segments.
UPS = "ups"

_xactions = itertools.count(1)


class EdgeError(OpensegError):
    """An error the Edge Network answers as a problem detail: ``code`` makes its ``type``."""

    code = "EXEG-0104"

    @property
    def type(self) -> str:
        return f"https://ns.adobe.com/aep/errors/{self.code}-{self.status}"


class InvalidRequest(EdgeError):
    """AEP's ``InputError``: a body that is not an edge request, or an event its dataset cannot take."""

    code = "EXEG-0104"
    title = "Invalid request"


class InvalidDatastream(EdgeError):
    code = "EXEG-0003"
    title = "Invalid datastream ID"


class NoPrimaryIdentity(EdgeError):
    """"The edge segmentation engine will only honor requests on the edge where there is one primary marked
    identity" (``help/segmentation/methods/edge-segmentation.md``); the collect endpoint answers 400 "when the
    mandatory primary identity was not found" (``help/server-api/non-interactive-data-collection.md``)."""

    code = "EXEG-0306"
    title = "No primary identity set in request (event)"


class EdgeNotConfigured(EdgeError):
    """AEP's ``ConfigurationError`` (422): the datastream's merge policy is not active on edge."""

    status = 422
    code = "EXEG-0104"
    title = "Unprocessable entity"


def problem(error: OpensegError, *, request_id: str, org_id: str | None, config_id: str | None) -> dict[str, Any]:
    """The problem detail of ``error`` (an ``EdgeError``, or any openseg error the request ran into)."""
    kind = error.type if isinstance(error, EdgeError) else \
        f"https://ns.adobe.com/aep/errors/EXEG-0104-{error.status}"
    report: dict[str, Any] = {"requestId": request_id}
    if org_id is not None:
        report["orgId"] = org_id
    if config_id is not None:
        report["configId"] = config_id
    report.update(error.report)
    return {"type": kind, "status": error.status, "title": error.title, "detail": error.detail, "report": report}


def is_synchronous(evaluation_info: Mapping[str, Any] | None) -> bool:
    """Whether a definition's ``evaluationInfo`` enables edge (synchronous) evaluation."""
    synchronous = (evaluation_info or {}).get("synchronous")
    return isinstance(synchronous, Mapping) and synchronous.get("enabled") is True


class EdgeStores(Protocol):
    """What the edge reads: datastreams, merge policies, definitions, the last profile build, membership."""

    def datastream(self, org_id: str, sandbox_id: str | None, datastream_id: str) -> Datastream | None:
        """The org's datastream, in ``sandbox_id`` (any sandbox of the org when None)."""
        ...

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        """The datastream's dataset, while it exists in the sandbox."""
        ...

    def active_on_edge(self, sandbox_id: str, policy_id: str) -> bool:
        """Whether the merge policy exists in the sandbox with ``isActiveOnEdge: true``."""
        ...

    def synchronous(self, sandbox_id: str, policy_id: str) -> list[ContinuousDefinition]:
        """The definitions of the policy with ``evaluationInfo.synchronous.enabled``."""
        ...

    def watermark(self, sandbox_id: str, policy_id: str) -> int | None:
        """The highest log ``seq`` the policy's last build holds; None when the policy has no build."""
        ...

    def linked(self, sandbox_id: str, policy_id: str) -> bool:
        """Whether the policy follows identities streamed records add (``identityGraph: pdg``)."""
        ...

    def precedence(self, sandbox_id: str, policy_id: str) -> tuple[str, ...]:
        """Under ``dataSetPrecedence``, the policy's dataset order as its last build merged by; else empty."""
        ...

    def part(self, sandbox_id: str, policy_id: str, namespace: str, identity: str) -> Part | None:
        """The profile of the last build holding the identity, with every identity the build gives it."""
        ...

    def is_profile_source(self, sandbox_id: str, dataset_id: str) -> bool:
        """Whether the dataset feeds the sandbox's profile builds (its streamed records are the profiles')."""
        ...

    def profiles(self, sandbox_id: str, policy_id: str, profile_ids: Sequence[str],
                 fields: Collection[str] | None = None, since: dt.datetime | None = None) -> dict[str, BaseProfile]:
        """The last build's rows and events of ``profile_ids``, by id (absent: the build has no such profile);
        ``fields``: the top-level fields the definitions read (None: every field); ``since``: events older than
        this may be left out (None: none may)."""
        ...

    def pinned(self) -> AbstractContextManager[None]:
        """Within, the stores' metadata is read once (one request sees one build)."""
        ...

    def membership(self, sandbox_id: str, policy_id: str, profile_id: str) -> Mapping[str, Pair]:
        """The profile's current membership of each segment (batch and streaming alike)."""
        ...


@dataclass(frozen=True)
class Tenant:
    """Who calls: the org, the sandbox ``x-sandbox-name`` names (None: the header is absent, and a datastream of
    any sandbox of the org is found, as AEP finds a datastream by its id alone), and the one sandbox the
    credentials are scoped to, if any."""

    org_id: str
    sandbox_id: str | None
    sandbox_only: str | None = None


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"'{field}' is required and must be an object", field=field)
    return value


def primary_identity(xdm: Mapping[str, Any], field: str) -> tuple[str, str]:
    """The one identity of ``identityMap`` marked primary (``true``, or ``"true"`` as AEP's own example sends).

    Raises:
        NoPrimaryIdentity: none is marked, or several are.
    """
    identity_map = xdm.get("identityMap")
    marked: list[tuple[str, str]] = []
    if isinstance(identity_map, Mapping):
        for namespace, entries in identity_map.items():
            for entry in entries if isinstance(entries, list) else []:
                if isinstance(entry, Mapping) and entry.get("primary") in (True, "true") \
                        and isinstance(entry.get("id"), str):
                    marked.append((namespace, entry["id"]))
    if not marked:
        raise NoPrimaryIdentity("No primary identity found in the input event. Mark exactly one identity of "
                                f"'{field}.identityMap' with \"primary\": true.", field=f"{field}.identityMap")
    if len(marked) > 1:
        names = ", ".join(f"{ns}:{identity}" for ns, identity in marked)
        raise NoPrimaryIdentity(f"The input event marks {len(marked)} identities primary ({names}); the edge "
                                "honors requests with exactly one primary identity.", field=f"{field}.identityMap")
    return marked[0]


def _identities(xdm: Mapping[str, Any], primary: tuple[str, str]) -> list[tuple[str, str]]:
    """Every ``(namespace, id)`` of the event, the primary first, namespaces lower-cased (as the profile
    store's lookups take them)."""
    found = [(primary[0].lower(), primary[1])]
    for namespace, entries in (xdm.get("identityMap") or {}).items():
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, Mapping) and isinstance(entry.get("id"), str):
                pair = (namespace.lower(), entry["id"])
                if pair not in found:
                    found.append(pair)
    return found


def event_record(event: object, field: str, at: dt.datetime) -> tuple[dict[str, Any], tuple[str, str]]:
    """The XDM record of one edge event (``{"xdm": {...}, "data": {...}?}``) and its primary identity.

    As the Edge Network does, an event without ``_id`` gets one and an event without ``timestamp`` gets the
    time it was received; ``primary: "true"`` (and ``"false"``) is stored as a boolean. ``data`` (free-form, for upstream
    services) is not part of the XDM record and is not kept.

    Raises:
        InvalidRequest: no ``xdm`` object, or an XDM value that does not fit the ExperienceEvent schema.
        NoPrimaryIdentity: not exactly one primary identity.
    """
    xdm = _object(_object(event, field).get("xdm"), f"{field}.xdm")
    primary = primary_identity(xdm, f"{field}.xdm")
    record = dict(xdm)
    record["identityMap"] = {
        namespace: [{**entry, "primary": entry["primary"] == "true"}
                    if isinstance(entry, dict) and entry.get("primary") in ("true", "false") else entry
                    for entry in entries] if isinstance(entries, list) else entries
        for namespace, entries in xdm["identityMap"].items()}
    record.setdefault("_id", str(uuid.uuid4()))
    record.setdefault("timestamp", at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
    problems = validate_record(record, EVENT) + typed_record(record, EVENT)[1]
    if problems:
        where, reason = problems[0]
        name = f"{field}.xdm.{where}" if where != "(record)" else f"{field}.xdm"
        raise InvalidRequest(f"'{name}' {reason}", field=name,
                             report={"errors": [f"{field}.xdm.{w}: {r}" for w, r in problems]})
    return record, primary


class Edge:
    """The two Edge Network routes over a datastream.

    Args:
        stores: Datastreams, policies, definitions, profiles and membership.
        stream_log: Where events go (durably, before the answer).
        clock: The evaluation time of each request (UTC; tests inject one).
        compiled: Predicates compiled once per definition version (shared across requests).
    """

    def __init__(self, stores: EdgeStores, stream_log: StreamLog, clock: Callable[[], dt.datetime],
                 compiled: CompiledSegments | None = None) -> None:
        self.stores = stores
        self.log = stream_log
        self.clock = clock
        self.compiled = compiled or CompiledSegments()
        # Requests run on several threads; CompiledSegments replaces an edited definition's predicate in place.
        self._compiling = threading.Lock()

    def pinned(self) -> AbstractContextManager[None]:
        """One request's view of the stores: within it, a datastream and the call on it read the metadata once
        (the calls below pin it themselves when called alone)."""
        return self.stores.pinned()

    def datastream(self, tenant: Tenant, datastream_id: str | None) -> Datastream:
        """The datastream of the caller's org and sandbox.

        Raises:
            InvalidDatastream: none is named, or the org and sandbox have no such datastream.
        """
        if not datastream_id:
            raise InvalidDatastream("The 'dataStreamId' query parameter is required.", field="dataStreamId")
        with self.stores.pinned():
            found = self.stores.datastream(tenant.org_id, tenant.sandbox_id, datastream_id)
        if found is not None and tenant.sandbox_only not in (None, found.sandbox_name):
            found = None  # credentials of another sandbox: as absent as another org's datastream
        if found is None:
            raise InvalidDatastream(f"The referenced datastream '{datastream_id}' doesn't exist in this org and "
                                    "sandbox. Update the reference and try again.", field="dataStreamId")
        return found

    def interact(self, datastream: Datastream, body: object) -> list[dict[str, Any]]:
        """Evaluate the synchronous segments of the event's profile, the event included, and log the event.

        Returns:
            The ``handle`` list: one ``activation:pull`` handle whose payload is one ``profileLookup`` with the
            segments the profile qualifies for, or empty for a profile the store does not know.

        Raises:
            EdgeNotConfigured: the datastream's merge policy is not (or no longer) active on edge, or its dataset
                is gone.
            InvalidRequest, NoPrimaryIdentity: see :func:`event_record`.
        """
        handle, entries = self.interaction(datastream, body)
        self.log.append(entries)
        return handle

    def interaction(self, datastream: Datastream, body: object) -> tuple[list[dict[str, Any]], list[LogEntry]]:
        """:meth:`interact` but for the log: its handle, and the entries the caller appends before it answers
        (a lane process of ``openseg serve`` hands them to the server, whose log is the only writer: two processes
        writing one SQLite log wait on each other's lock, in sleeps of up to 100 ms)."""
        with self.stores.pinned():
            if not self.stores.active_on_edge(datastream.sandbox_id, datastream.merge_policy_id):
                raise EdgeNotConfigured(f"The datastream's merge policy '{datastream.merge_policy_id}' is not "
                                        "active on edge (isActiveOnEdge: true): edge segmentation cannot run.",
                                        field="mergePolicyId")
            at = self.clock()
            record, primary = event_record(_object(body, "body").get("event"), "event", at)
            payload = self._profile_lookup(datastream, record, _identities(record, primary), at)
            entries = self._entries(datastream, [record], at)
        return [{"type": ACTIVATION_PULL, "eventIndex": 0, "payload": payload}], entries

    def _profile_lookup(self, datastream: Datastream, record: dict[str, Any], identities: list[tuple[str, str]],
                        at: dt.datetime) -> list[dict[str, Any]]:
        sandbox_id, policy_id = datastream.sandbox_id, datastream.merge_policy_id
        found = self._reach(sandbox_id, policy_id, identities)
        # "When the profile is not on the edge" (neither a build nor the stream log has it): an empty payload.
        if found is None or not (found.parts or found.messages):
            return []
        definitions = self.stores.synchronous(sandbox_id, policy_id)
        with self._compiling:  # compiled once per version; evaluate() below then only reads
            for definition in definitions:
                self.compiled.predicate(definition)
        membership = self.stores.membership(sandbox_id, policy_id, found.profile_id) if definitions else {}
        bases = self.stores.profiles(sandbox_id, policy_id, [p.profile_id for p in found.parts],
                                     self.compiled.fields(definitions), self.compiled.since(definitions, at))
        profile, events = overlaid(found, bases, self.stores.precedence(sandbox_id, policy_id))
        events = overlay_events(events, [record])
        answers = evaluate(definitions, self.compiled, profile, events, membership, at)
        segments = [{"id": segment_id, "namespace": UPS} for segment_id in sorted(answers) if answers[segment_id]]
        return [{"type": PROFILE_LOOKUP, "segments": segments}]

    def _reach(self, sandbox_id: str, policy_id: str, identities: list[tuple[str, str]]) -> Reach | None:
        """The profile holding the event's identities, with the logged messages its build does not hold (None:
        the policy has no build)."""
        watermark = self.stores.watermark(sandbox_id, policy_id)
        if watermark is None:
            return None
        sources: dict[str, bool] = {}

        def is_source(dataset_id: str) -> bool:
            if dataset_id not in sources:
                sources[dataset_id] = self.stores.is_profile_source(sandbox_id, dataset_id)
            return sources[dataset_id]

        return reach(self.log, sandbox_id, identities, watermark,
                     part_of=lambda namespace, identity: self.stores.part(sandbox_id, policy_id, namespace, identity),
                     is_source=is_source, linked=self.stores.linked(sandbox_id, policy_id))

    def collect(self, datastream: Datastream, body: object) -> None:
        """Log every event of ``{"events": [{"xdm": ...}, ...]}``, all or none.

        Raises:
            EdgeNotConfigured: the datastream's dataset is gone.
            InvalidRequest: no non-empty ``events`` list, or an event that is not valid (named by its index).
            NoPrimaryIdentity: an event without exactly one primary identity.
        """
        self.log.append(self.collection(datastream, body))

    def collection(self, datastream: Datastream, body: object) -> list[LogEntry]:
        """:meth:`collect` but for the log: the entries the caller appends before it answers."""
        events = _object(body, "body").get("events")
        if not isinstance(events, list) or not events:
            raise InvalidRequest("'events' is required and must be a non-empty list of events", field="events")
        at = self.clock()
        records = [event_record(event, f"events[{index}]", at)[0] for index, event in enumerate(events)]
        with self.stores.pinned():
            return self._entries(datastream, records, at)

    def _entries(self, datastream: Datastream, records: list[dict[str, Any]], at: dt.datetime) -> list[LogEntry]:
        dataset = self.stores.dataset(datastream.sandbox_id, datastream.dataset_id)
        if dataset is None or dataset.kind != EVENT:
            raise EdgeNotConfigured(f"The datastream's dataset '{datastream.dataset_id}' no longer exists as an "
                                    "ExperienceEvent dataset of its sandbox: the events cannot be kept.",
                                    field="datasetId")
        received = int(at.timestamp() * 1000)
        request = f"{received}:{os.getpid()}:e{next(_xactions)}"
        return [LogEntry(xaction_id=f"{request}:{index}", received_ms=received, inlet_id=datastream.id,
                         org_id=datastream.org_id, sandbox_id=datastream.sandbox_id, dataset_id=datastream.dataset_id,
                         kind=EVENT, record=record)
                for index, record in enumerate(records)]


__all__ = [
    "ACTIVATION_PULL",
    "PROFILE_LOOKUP",
    "Edge",
    "EdgeError",
    "EdgeNotConfigured",
    "EdgeStores",
    "InvalidDatastream",
    "InvalidRequest",
    "NoPrimaryIdentity",
    "Tenant",
    "event_record",
    "is_synchronous",
    "primary_identity",
    "problem",
]
