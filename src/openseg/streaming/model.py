"""The values of streaming ingestion: an inlet (AEP's streaming connection) and a logged message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The ``inputFormat`` key of a streamed batch naming the log positions of its first and last message (what
#: a profile build includes of the log: the watermark an overlay of newer messages starts from).
STREAM_SEQ = "openseg:streamSeq"
#: The ``origin`` of a batch the flusher wrote from the stream log.
STREAMED_ORIGIN = "streaming"
#: AEP's connection spec of an HTTP API streaming connection.
STREAMING_SPEC_ID = "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb"


@dataclass(frozen=True)
class Connection:
    """A streaming connection and its inlet: messages posted to ``/collection/{inlet_id}`` go to
    ``dataset_id`` in the connection's sandbox.

    Attributes:
        inlet_id: 64 hexadecimal characters (256 random bits), distinct from ``id`` (a UUID); the collection
            path accepts either, as AEP's pages call its parameter ``{CONNECTION_ID}``.
        authentication_required: Messages need the org's credentials (AEP's authenticated inlet).
    """

    id: str
    org_id: str
    sandbox_id: str
    sandbox_name: str
    inlet_id: str
    name: str
    description: str | None
    dataset_id: str
    source_id: str
    data_type: str
    authentication_required: bool
    etag: str
    created: int
    updated: int


@dataclass(frozen=True)
class DatasetInfo:
    """What streaming needs of a dataset: its record kind (``profile`` or ``event``; ``union`` is refused)."""

    id: str
    kind: str


@dataclass(frozen=True)
class LogEntry:
    """One accepted message, as the collection endpoints append it to the stream log.

    Attributes:
        problems: The record's validation problems as ``(field, reason)``; a message with problems is
            acknowledged (asynchronous validation, as in AEP) and lands in a failed batch of its dataset.
    """

    xaction_id: str
    received_ms: int
    inlet_id: str
    org_id: str
    sandbox_id: str
    dataset_id: str
    kind: str
    record: dict[str, Any]
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class LoggedMessage:
    """A log entry with the position the log gave it (``seq``: increasing in commit order)."""

    seq: int
    entry: LogEntry


@dataclass(frozen=True)
class StreamBatch:
    """One lake batch a flush writes: the valid records of one dataset (``failures`` empty), or the
    invalid ones (``records`` empty, ``failures`` their problems) which make a failed batch.

    Attributes:
        batch_id: Derived from the log and the first ``seq`` of the batch, so that a flush retried after a
            crash writes the same batch id and directory again instead of a second copy.
        first_seq: The first log position among its messages; ``last_seq`` the last.
        failures: Per invalid message, its ``seq`` and its problems as ``(field, reason)``.
    """

    batch_id: str
    org_id: str
    sandbox_id: str
    dataset_id: str
    kind: str
    first_seq: int
    last_seq: int
    records: tuple[dict[str, Any], ...] = ()
    failures: tuple[tuple[int, tuple[tuple[str, str], ...]], ...] = ()


@dataclass(frozen=True)
class LogRange:
    """The log messages ``after < seq <= through`` a consumer applied (what it records with their effects)."""

    consumer: str
    after: int
    through: int


@dataclass(frozen=True, order=True)
class DueKey:
    """A (profile, continuous segment) pair of one membership store, whose answer may change at a known time
    without new data (a time window passing): streaming segmentation evaluates the profile again then."""

    sandbox_id: str
    policy_id: str
    profile_id: str
    segment_id: str
