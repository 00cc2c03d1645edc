"""Streaming's domain on fakes of its ports: how a flush groups messages, and what a collector logs."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

import pytest

from openseg.errors import NotFound
from openseg.streaming.collection import Collector, MessageRefused, find_inlet
from openseg.streaming.flusher import batch_id, plan_batches
from openseg.streaming.model import Connection, DatasetInfo, LogEntry, LoggedMessage
from tests.streaming.inlets import click, envelope


def message(seq: int, dataset: str, *, valid: bool = True) -> LoggedMessage:
    return LoggedMessage(seq, LogEntry(
        xaction_id=f"1:1:{seq}", received_ms=seq, inlet_id="i" * 64, org_id="O@AdobeOrg", sandbox_id="s",
        dataset_id=dataset, kind="event", record={"_id": f"e{seq}"},
        problems=() if valid else (("timestamp", "is required"),)))


def test_a_flush_makes_one_batch_per_dataset_and_validity_in_first_message_order() -> None:
    messages = [message(1, "b"), message(2, "a"), message(3, "b", valid=False), message(4, "b"), message(5, "a")]
    batches = plan_batches("log", messages)
    assert [(b.dataset_id, bool(b.records), b.first_seq, b.last_seq) for b in batches] == [
        ("b", True, 1, 4), ("a", True, 2, 5), ("b", False, 3, 3)]
    assert [r["_id"] for r in batches[0].records] == ["e1", "e4"]
    assert batches[2].failures == ((3, (("timestamp", "is required"),)),)
    assert batches[0].batch_id == batch_id("log", 1, "b", True)
    assert len({b.batch_id for b in batches}) == 3 and all(len(b.batch_id) == 32 for b in batches)
    # A retry that reads more messages after the same offset names its batches the same.
    again = plan_batches("log", [*messages, message(6, "b"), message(7, "c")])
    assert [b.batch_id for b in again][:3] == [b.batch_id for b in batches]
    assert plan_batches("another log", messages)[0].batch_id != batches[0].batch_id


class FakeStore:
    def __init__(self, connection: Connection, datasets: dict[tuple[str, str], DatasetInfo]) -> None:
        self.connection = connection
        self.datasets = datasets

    def add(self, connection: Connection) -> None:
        raise AssertionError("not used")

    def get(self, org_id: str, sandbox_id: str, connection_id: str) -> Connection | None:
        return None

    def by_inlet(self, inlet_or_connection_id: str) -> Connection | None:
        known = (self.connection.inlet_id, self.connection.id)
        return self.connection if inlet_or_connection_id in known else None

    def dataset(self, sandbox_id: str, dataset_id: str) -> DatasetInfo | None:
        return self.datasets.get((sandbox_id, dataset_id))


class FakeLog:
    log_id = "fake"

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def append(self, entries: Sequence[LogEntry]) -> list[int]:
        self.entries += entries
        return list(range(len(self.entries) - len(entries) + 1, len(self.entries) + 1))

    def read(self, after: int, limit: int) -> list[LoggedMessage]:
        return [LoggedMessage(i + 1, e) for i, e in enumerate(self.entries)][after:after + limit]

    def last_seq(self) -> int:
        return len(self.entries)

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> list[LoggedMessage]:
        raise AssertionError("not used")

    def prune(self, through: int, keep: Mapping[str, int] | None = None) -> int:
        raise AssertionError("not used")


CONNECTION = Connection(id="c0ffee00-0000-0000-0000-000000000000", org_id="O@AdobeOrg", sandbox_id="s",
                        sandbox_name="prod", inlet_id="ab" * 32, name="web", description=None, dataset_id="d1",
                        source_id="web", data_type="xdm", authentication_required=False, etag='"1"', created=1,
                        updated=1)


def collector() -> tuple[Collector, FakeLog]:
    store = FakeStore(CONNECTION, {("s", "d1"): DatasetInfo("d1", "event"), ("s", "d2"): DatasetInfo("d2", "profile"),
                                   ("s", "u"): DatasetInfo("u", "union")})
    log = FakeLog()
    return Collector(store, store, log, lambda: 1_700_000_000_000), log


def test_a_collector_logs_the_record_with_its_dataset_kind_and_problems() -> None:
    collect, log = collector()
    ack = collect.collect(CONNECTION, envelope(click(1)), sync=False)
    assert ack["receivedTimeMs"] == 1_700_000_000_000 and ack["inletId"] == CONNECTION.inlet_id
    (entry,) = log.entries
    assert (entry.dataset_id, entry.kind, entry.problems, entry.xaction_id) == ("d1", "event", (), ack["xactionId"])
    # identityMap under xdmMeta (one AEP example puts it there) is read too.
    record = click(2)
    identities = record.pop("identityMap")
    moved = envelope(record)
    moved["body"]["xdmMeta"]["identityMap"] = identities
    collect.collect(CONNECTION, moved, sync=True)
    assert log.entries[1].record["identityMap"] == identities
    # A profile dataset named in the header: the record is checked as a profile (no _id or timestamp needed).
    collect.collect(CONNECTION, envelope({"identityMap": identities}, dataset_id="d2"), sync=True)
    assert log.entries[2].kind == "profile"


@pytest.mark.parametrize("dataset", ["u", "nosuch"])
def test_a_collector_refuses_a_dataset_it_cannot_write(dataset: str) -> None:
    collect, log = collector()
    with pytest.raises(MessageRefused, match="Message has an unknown dataset in the header"):
        collect.collect(CONNECTION, envelope(click(1), dataset_id=dataset), sync=False)
    assert log.entries == []


def test_an_inlet_is_found_by_its_id_or_its_connections() -> None:
    store = FakeStore(CONNECTION, {})
    assert find_inlet(store, CONNECTION.inlet_id) is CONNECTION
    assert find_inlet(store, CONNECTION.id) is CONNECTION
    for unknown in ("cd" * 32, "../etc", "x" * 65):
        with pytest.raises(NotFound):
            find_inlet(store, unknown)
