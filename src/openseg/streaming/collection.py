"""``/collection``: check streamed messages against their inlet and dataset, append them to the stream log,
and acknowledge them in AEP's shapes (``help/ingestion/quality/streaming-validation.md``).

A message is acknowledged only after the log has it on disk, so an acknowledged message survives a crash of
every process. Validation against the dataset's schema is the batch ingestion's (``validate_record`` and
``typed_record``): asynchronous by default (an invalid record is acknowledged and lands in a failed batch
of the dataset), synchronous with ``syncValidation=true`` (refused with every bad field named, not logged).
"""

from __future__ import annotations

import itertools
import os
import re
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from openseg.catalog.validation import typed_record, validate_record
from openseg.errors import BadRequest, NotFound, OpensegError
from openseg.streaming.model import Connection, DatasetInfo, LogEntry
from openseg.streaming.ports import ConnectionRepository, DatasetLookup, StreamLog

#: AEP refuses a request body over 1 MB (``/collection`` and ``/collection/batch`` alike) with 413.
MAX_BODY_BYTES = 1_000_000
#: AEP's validation "stops processing that message" once five errors are found.
MAX_CAUSES = 5

UNKNOWN_FORMAT = "Message has unknown xdm format"
WRONG_ORG = "Message has an absent or wrong ims org in the header"
UNKNOWN_DATASET = "Message has an unknown dataset in the header"
INVALID = "Message is invalid"

_xactions = itertools.count(1)  # next() on a count is atomic under the GIL: unique ids across threads


class PayloadTooLarge(OpensegError):
    status = 413
    title = "Payload Too Large"


class TooManyRequests(OpensegError):
    status = 429
    title = "Too Many Requests"


class RateLimit:
    """At most ``limit`` calls per key within any ``window_ms`` (a sliding window, per process).

    AEP: with ``syncValidation=true`` "the request will be rate limited to 60 times per minute per
    CONNECTION_ID" (``help/ingestion/tutorials/streaming-time-series-data.md``).
    """

    def __init__(self, limit: int, window_ms: int) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self._calls: dict[str, deque[int]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now_ms: int) -> bool:
        """Count one call of ``key`` at ``now_ms``; False (and not counted) when the limit is reached."""
        with self._lock:
            calls = self._calls.setdefault(key, deque())
            while calls and calls[0] <= now_ms - self.window_ms:
                calls.popleft()
            if len(calls) >= self.limit:
                return False
            calls.append(now_ms)
            return True


#: The process's limit of synchronously validated messages per inlet.
SYNC_VALIDATION_LIMIT = RateLimit(60, 60_000)


class MessageRefused(OpensegError):
    """A single message that cannot be accepted: its ``detail`` is AEP's report message, ``causes`` the
    schema violations when synchronous validation found them."""

    status = 400
    title = "Invalid XDM Message Format"

    def __init__(self, detail: str, causes: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.causes = causes or []


def check_size(length: int) -> None:
    if length > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"the request body is {length} bytes; at most {MAX_BODY_BYTES} bytes are accepted")


def find_inlet(connections: ConnectionRepository, inlet_id: str) -> Connection:
    if not re.fullmatch(r"[0-9a-fA-F-]{1,64}", inlet_id):
        raise NotFound.of("inlet", inlet_id)
    found = connections.by_inlet(inlet_id)
    if found is None:
        raise NotFound.of("inlet", inlet_id)
    return found


def violations(problems: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
    """Validation problems as AEP's ``causingExceptions`` (at most five), each naming its field."""
    causes = []
    for field, reason in problems[:MAX_CAUSES]:
        pointer = "#/" + re.sub(r"\[(\d+)\]", r"/\1", field).replace(".", "/") if field != "(record)" else "#"
        keyword = "required" if "required" in reason else "type"
        causes.append({"schemaLocation": pointer.replace("#/", "#/properties/", 1) if pointer != "#" else "#",
                       "pointerToViolation": pointer, "causingExceptions": [], "keyword": keyword,
                       "message": f"[{field}] {reason}"})
    return causes


def _prefix(connection: Connection) -> str:
    return f"inletId: [{connection.inlet_id}] imsOrgId: [{connection.org_id}]"


@dataclass(frozen=True)
class Checked:
    dataset: DatasetInfo
    record: dict[str, Any]
    problems: tuple[tuple[str, str], ...]


class Collector:
    """Accepts messages of inlets: checks them and appends them to ``log``.

    Args:
        connections: Finds inlets.
        datasets: The datasets messages name.
        log: Where accepted messages go (durably, before the acknowledgement).
        clock: Milliseconds since the epoch (``receivedTimeMs``).
        sync_limit: How many synchronously validated messages an inlet takes per minute.
    """

    def __init__(self, connections: ConnectionRepository, datasets: DatasetLookup, log: StreamLog,
                 clock: Callable[[], int], sync_limit: RateLimit = SYNC_VALIDATION_LIMIT) -> None:
        self.connections = connections
        self.datasets = datasets
        self.log = log
        self.clock = clock
        self.sync_limit = sync_limit

    def check(self, connection: Connection, message: object) -> Checked | str:
        """The message's dataset, record and validation problems, or why it cannot be taken at all."""
        if not isinstance(message, dict):
            return UNKNOWN_FORMAT
        header, body = message.get("header"), message.get("body")
        if not isinstance(header, dict) or not isinstance(body, dict) or not isinstance(body.get("xdmEntity"), dict):
            return UNKNOWN_FORMAT
        # AEP: "If the request payload does not include an imsOrgId field, DCCS will add the field".
        org = header.get("imsOrgId")
        if org is not None and org != connection.org_id:
            return WRONG_ORG
        dataset_id = header.get("datasetId") or connection.dataset_id
        dataset = self.datasets.dataset(connection.sandbox_id, dataset_id) if isinstance(dataset_id, str) else None
        if dataset is None or dataset.kind not in ("profile", "event"):
            return UNKNOWN_DATASET
        record = dict(body["xdmEntity"])
        meta = body.get("xdmMeta")
        # One AEP example puts identityMap under xdmMeta: accepted there too.
        if "identityMap" not in record and isinstance(meta, dict) and "identityMap" in meta:
            record["identityMap"] = meta["identityMap"]
        problems = validate_record(record, dataset.kind)
        problems += typed_record(record, dataset.kind)[1]
        return Checked(dataset, record, tuple(problems))

    def _entry(self, connection: Connection, checked: Checked, xaction_id: str, received: int) -> LogEntry:
        return LogEntry(xaction_id=xaction_id, received_ms=received, inlet_id=connection.inlet_id,
                        org_id=connection.org_id, sandbox_id=connection.sandbox_id, dataset_id=checked.dataset.id,
                        kind=checked.dataset.kind, record=checked.record, problems=checked.problems)

    def collect(self, connection: Connection, message: object, *, sync: bool) -> dict[str, Any]:
        """Accept one message: AEP's 200 acknowledgement once it is in the log.

        Raises:
            MessageRefused: the message has no XDM envelope, names another org or an unknown dataset, or
                (with ``sync``) breaks its dataset's schema; nothing is logged.
            TooManyRequests: the 61st synchronously validated message of the inlet within a minute.
        """
        entry, answer = self.accept(connection, message, sync=sync)
        self.log.append([entry])
        return answer

    def accept(self, connection: Connection, message: object, *, sync: bool) -> tuple[LogEntry, dict[str, Any]]:
        """:meth:`collect` but for the log: the entry the caller appends, and the acknowledgement it answers once
        the entry is on disk (raises as :meth:`collect` does)."""
        received = self.clock()
        if sync and not self.sync_limit.take(connection.inlet_id, received):
            raise TooManyRequests(f"{_prefix(connection)} syncValidation is limited to {self.sync_limit.limit} "
                                  "requests per minute per inlet")
        checked = self.check(connection, message)
        if isinstance(checked, str):
            raise MessageRefused(f"{_prefix(connection)} {checked}")
        if sync and checked.problems:
            raise MessageRefused(f"{_prefix(connection)} {INVALID}", violations(checked.problems))
        xaction_id = f"{received}:{os.getpid()}:{next(_xactions)}"
        return self._entry(connection, checked, xaction_id, received), {
            "inletId": connection.inlet_id, "xactionId": xaction_id, "receivedTimeMs": received,
            "syncValidation": {"status": "pass"} if sync else {"skipped": True}}

    def collect_batch(self, connection: Connection, body: object) -> dict[str, Any]:
        """Accept ``{"messages": [...]}``: AEP's 207 body, one response per message in order (an
        ``xactionId`` for each accepted one, ``statusCode`` and ``message`` for each refused one)."""
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise BadRequest("the body must be {\"messages\": [message, ...]}", field="messages")
        received = self.clock()
        batch_id = f"{received}:{os.getpid()}:{next(_xactions)}"
        responses: list[dict[str, Any]] = []
        entries: list[LogEntry] = []
        for index, message in enumerate(body["messages"]):
            checked = self.check(connection, message)
            if isinstance(checked, str):
                responses.append({"statusCode": 400, "message": f"{_prefix(connection)} {checked}"})
                continue
            xaction_id = f"{batch_id}:{index}"
            entries.append(self._entry(connection, checked, xaction_id, received))
            responses.append({"xactionId": xaction_id})
        if entries:
            self.log.append(entries)
        return {"inletId": connection.inlet_id, "batchId": batch_id, "receivedTimeMs": received,
                "responses": responses}
