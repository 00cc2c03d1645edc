"""The stream log: durable appends in commit order, group commit, reopening after a restart."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from openseg import streaming_target
from openseg.bootstrap import build_services, streamer
from openseg.config import Settings
from openseg.store.stream_due import SqliteDueIndex
from openseg.store.stream_log import SqliteStreamLog
from openseg.streaming.model import LogEntry
from openseg.streaming_target import StoresSegmentationTarget


def entry(i: int, **record: object) -> LogEntry:
    return LogEntry(xaction_id=f"1:1:{i}", received_ms=1_700_000_000_000 + i, inlet_id="a" * 64, org_id="O@AdobeOrg",
                    sandbox_id="s", dataset_id="d", kind="event", record={"_id": f"e{i}", **record},
                    problems=(("timestamp", "is required"),) if i % 2 else ())


def test_appends_come_back_in_order_with_everything_they_held(tmp_path: Path) -> None:
    log = SqliteStreamLog(tmp_path / "log.sqlite")
    assert log.append([entry(1), entry(2)]) == [1, 2]
    assert log.append([entry(3)]) == [3]
    assert log.last_seq() == 3
    assert [m.seq for m in log.read(1, 10)] == [2, 3]
    assert [m.entry for m in log.read(0, 2)] == [entry(1), entry(2)]
    again = SqliteStreamLog(tmp_path / "log.sqlite")  # a restarted process
    assert again.log_id == log.log_id
    assert [m.entry for m in again.read(0, 10)] == [entry(1), entry(2), entry(3)]
    assert again.append([entry(4)]) == [4]


def test_appends_waiting_for_the_writer_commit_together(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = SqliteStreamLog(tmp_path / "log.sqlite")
    commits: list[int] = []
    started = threading.Event()
    real = SqliteStreamLog._commit

    def counting(connection, group):  # type: ignore[no-untyped-def]
        if not started.is_set():  # the first commit is slow: the other 15 callers queue up behind it meanwhile
            started.set()
            deadline = time.monotonic() + 10
            while len(log._queue) < 15 and time.monotonic() < deadline:
                time.sleep(0.005)
        commits.append(sum(len(p.entries) for p in group))
        real(connection, group)

    monkeypatch.setattr(SqliteStreamLog, "_commit", staticmethod(counting))
    seqs: dict[int, list[int]] = {}

    def append(i: int) -> None:
        seqs[i] = log.append([entry(i)])

    first = threading.Thread(target=append, args=(0,))
    first.start()
    assert started.wait(10)
    others = [threading.Thread(target=append, args=(i,)) for i in range(1, 16)]
    for thread in others:
        thread.start()
    for thread in [first, *others]:
        thread.join(20)
    assert commits == [1, 15]
    assert sorted(s for (s,) in seqs.values()) == list(range(1, 17))
    assert {m.entry.record["_id"]: m.seq for m in log.read(0, 100)} == {f"e{i}": s for i, (s,) in seqs.items()}


def test_a_failed_commit_acknowledges_nothing_of_its_group(tmp_path: Path) -> None:
    log = SqliteStreamLog(tmp_path / "log.sqlite")
    log.append([entry(1)])
    with pytest.raises(TypeError):
        log.append([entry(2), entry(3, when=object())])  # not JSON: the whole append fails
    assert [m.entry.record["_id"] for m in log.read(0, 10)] == ["e1"]
    assert log.append([entry(4)]) == [2]  # 2 and 3 were rolled back: seq goes on from the last committed
    assert [m.entry.record["_id"] for m in log.read(0, 10)] == ["e1", "e4"]


def test_an_event_loop_awaits_a_submitted_append_without_a_waiting_thread(tmp_path: Path) -> None:
    """``submit`` hands entries to the group commit and returns at once; its future holds their seqs once they are
    on disk, or the commit's error (then none of them is), and an event loop awaits it as it is."""
    log = SqliteStreamLog(tmp_path / "log.sqlite")

    async def acknowledge(*entries: Any) -> list[int]:
        return await asyncio.wrap_future(log.submit(list(entries)))

    def on_a_loop(*entries: Any) -> list[int]:
        # A loop of its own in a thread of its own: another test's (a browser's) may still run in this one.
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, acknowledge(*entries)).result()

    assert on_a_loop(entry(1), entry(2)) == [1, 2]
    with pytest.raises(TypeError):
        on_a_loop(entry(3), entry(4, when=object()))  # not JSON: nothing of it is logged
    assert log.submit([entry(5)]).result(timeout=10) == [3]
    assert [m.entry.record["_id"] for m in log.read(0, 10)] == ["e1", "e2", "e5"]


def test_the_writer_thread_ends_when_idle_and_starts_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("openseg.store.stream_log.IDLE_SECONDS", 0.05)
    log = SqliteStreamLog(tmp_path / "log.sqlite")
    log.append([entry(1)])
    deadline = time.monotonic() + 5
    while log._writer is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert log._writer is None
    assert log.append([entry(2)]) == [2]


def test_pruned_messages_are_gone_and_their_seqs_never_come_back(tmp_path: Path) -> None:
    log = SqliteStreamLog(tmp_path / "log.sqlite")
    assert log.last_seq() == 0
    log.append([entry(1), entry(2), entry(3)])
    assert log.prune(2) == 2
    assert [m.seq for m in log.read(0, 10)] == [3]
    assert log.prune(3) == 1 and log.read(0, 10) == []
    assert log.last_seq() == 3  # an empty log still knows how far it got
    assert log.append([entry(4)]) == [4]
    assert SqliteStreamLog(tmp_path / "log.sqlite").last_seq() == 4


def test_messages_carrying_any_of_many_keys_come_back_once_each_in_order(tmp_path: Path) -> None:
    log = SqliteStreamLog(tmp_path / "log.sqlite")
    # 1,200 messages of 600 profiles (two each), in more keys than one query binds; and another sandbox's message.
    log.append([entry(i, identityMap={"email": [{"id": f"p{i % 600}@x.com"}], "ECID": [{"id": f"ecid{i}"}]})
                for i in range(1, 1201)])
    log.append([LogEntry("1:1:0", 0, "a" * 64, "O@AdobeOrg", "other", "d", "event",
                         {"identityMap": {"email": [{"id": "p1@x.com"}]}})])
    keys = [f"email:p{n}@x.com" for n in range(600)] + ["ecid:ecid7", "email:nobody@x.com"]
    found = log.carrying("s", keys, 0)
    assert [m.seq for m in found] == list(range(1, 1201))
    assert [m.seq for m in log.carrying("s", keys, 100, 700)] == list(range(101, 701))
    assert [m.seq for m in log.carrying("s", ["email:p7@x.com", "ecid:ecid607"], 0)] == [7, 607]
    assert [m.entry.sandbox_id for m in log.carrying("other", keys, 0)] == ["other"]
    assert log.carrying("s", [], 0) == []


@pytest.mark.parametrize(("setting", "level", "fsyncs"), [("checkpoint", "NORMAL", 0), ("commit", "FULL", 1)])
def test_streamings_files_are_fsyncd_at_checkpoints_unless_told_at_each_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str, level: str, fsyncs: int) -> None:
    """``OPENSEG_STREAM_FSYNC``: by default a commit of the log (and of the streamer's due times and offsets)
    is in the operating system's hands once written, which a ``kill -9`` of every process does not undo
    (tests/streaming/test_kill.py); ``commit`` waits for the disk at each one, for power cuts."""
    services = build_services(Settings.from_env(home=tmp_path / "home", env={"OPENSEG_STREAM_FSYNC": setting}))
    try:
        consumer = streamer(services)
        assert consumer.segmenter is not None
        assert services.stream_log().synchronous() == level
        assert isinstance(consumer.segmenter.due, SqliteDueIndex)
        assert consumer.segmenter.due.synchronous() == level
        assert isinstance(consumer.segmenter.target, StoresSegmentationTarget)
        synced: list[int] = []
        monkeypatch.setattr(streaming_target.os, "fsync", synced.append)
        consumer.segmenter.target.record_progress("segments:log", 42)
        assert len(synced) == fsyncs
        assert consumer.segmenter.target.progress("segments:log") == 42
    finally:
        services.db.dispose()


def test_an_unknown_stream_fsync_setting_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OPENSEG_STREAM_FSYNC must be 'checkpoint' or 'commit', not 'always'"):
        Settings.from_env(home=tmp_path, env={"OPENSEG_STREAM_FSYNC": "always"})
