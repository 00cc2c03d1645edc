"""The flusher: logged messages become ordinary lake batches of their dataset, exactly once.

It reads the log after its offset, groups the messages by dataset (valid records make a batch that the
catalog ingests like an uploaded file; invalid ones a failed batch listing their problems) and hands them
to the lake sink, which publishes them and moves the offset in one transaction. A flush killed before that
transaction leaves the old offset, and the retry reads the same messages again and derives the same batch
ids (from the log and each batch's first ``seq``), so it replaces what the dead run left instead of adding
a second copy; a flush killed after it has nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from openseg.streaming.model import LoggedMessage, StreamBatch
from openseg.streaming.ports import LakeSink, StreamLog
from openseg.streaming.segmenter import SWEEP_BATCH, StreamSegmenter

log = logging.getLogger("openseg.streaming")

#: A flush writes at most this many records (AEP: a streaming source's batches are flushed by size or time).
FLUSH_RECORDS = 10_000
#: How long a message may wait in the log before it is flushed.
FLUSH_SECONDS = 1.0
#: How long the streamer's loop waits before it looks at the log again; a message waits for the loop's next
#: micro-batch. At 1M profiles and 500 messages a second a micro-batch took 80-110 ms with 100 ms waits (its oldest
#: message had waited 130-160 ms before it was read), and 50-60 ms with 20 ms waits (about 80 messages each).
POLL_SECONDS = 0.02
#: How long streaming segmentation waits after a failure before it tries the same messages again.
SEGMENT_RETRY_SECONDS = 5.0
#: At most one sweep of due time windows this often: each sweep is one change file of the membership store,
#: which every lookup reads until a job folds it, so pairs due close together are swept together.
SWEEP_SECONDS = 1.0
#: How often the streamer looks for a segment job's new membership (whose time-windowed members need due times).
JOB_CHECK_SECONDS = 5.0
#: How long one chunk of a job's members given due times may hold up the streamer's loop, whose messages wait
#: meanwhile: chunks of a fixed 5,000 profiles took 1.6-3.9 s each at 1M profiles, and after a job whose
#: time-windowed segments had 150,000 members every message waited that long for minutes.
SCHEDULE_SECONDS = 0.05
#: The first chunk's size, before the loop has timed one.
FIRST_SCHEDULE_CHUNK = 64


def consumer_name(stream_log: StreamLog) -> str:
    """The lake flusher's name for its offset in this log."""
    return f"lake:{stream_log.log_id}"


def batch_id(log_id: str, first_seq: int, dataset_id: str, valid: bool) -> str:
    digest = hashlib.sha256(f"{log_id}:{first_seq}:{dataset_id}:{'ok' if valid else 'failed'}".encode())
    return digest.hexdigest()[:32]


def plan_batches(log_id: str, messages: Sequence[LoggedMessage]) -> list[StreamBatch]:
    """The lake batches of ``messages``: per dataset, one of the valid records and one of the invalid, in
    the order of their first message."""
    groups: dict[tuple[str, bool], list[LoggedMessage]] = {}
    for message in messages:
        groups.setdefault((message.entry.dataset_id, not message.entry.problems), []).append(message)
    batches = []
    for (dataset_id, valid), group in groups.items():
        first = group[0].entry
        batches.append(StreamBatch(
            batch_id=batch_id(log_id, group[0].seq, dataset_id, valid), org_id=first.org_id,
            sandbox_id=first.sandbox_id, dataset_id=dataset_id, kind=first.kind, first_seq=group[0].seq,
            last_seq=group[-1].seq,
            records=tuple(m.entry.record for m in group) if valid else (),
            failures=() if valid else tuple((m.seq, m.entry.problems) for m in group),
        ))
    return batches


@dataclass(frozen=True)
class Flushed:
    records: int
    batch_ids: tuple[str, ...]
    through: int


def flush(stream_log: StreamLog, sink: LakeSink, *, max_records: int = FLUSH_RECORDS,
          others: Sequence[int] = ()) -> Flushed:
    """Write the messages after the flusher's offset (at most ``max_records``) to the lake, then prune the log
    below the lowest offset of the lake and the ``others`` consumers (streaming segmentation), keeping what the
    profile builds do not hold yet (``LakeSink.unbuilt``: lookups read it from the log until then)."""
    consumer = consumer_name(stream_log)
    offset = sink.offset(consumer)
    messages = stream_log.read(offset, max_records)
    if not messages:
        if others:  # another consumer may have moved on since the last flush
            stream_log.prune(min([offset, *others]), sink.unbuilt())
        return Flushed(0, (), offset)
    through = messages[-1].seq
    ids = sink.write(consumer, plan_batches(stream_log.log_id, messages), through)
    # What every consumer has leaves the log (a crash before this line leaves it to the next flush).
    stream_log.prune(min([through, *others]), sink.unbuilt())
    return Flushed(len(messages), tuple(ids), through)


class Streamer:
    """The streaming consumers: streaming segmentation evaluates every message as soon as it is logged, and
    the log is flushed to the lake every ``flush_seconds``, or at once when ``max_records`` are waiting.

    Args:
        stream_log: The log the collection endpoints append to.
        sink: The lake.
        segmenter: Streaming segmentation, the second consumer (None: the lake only).
        monotonic: Seconds of a monotonic clock (tests inject one).
    """

    def __init__(self, stream_log: StreamLog, sink: LakeSink, *, segmenter: StreamSegmenter | None = None,
                 flush_seconds: float = FLUSH_SECONDS, max_records: int = FLUSH_RECORDS,
                 poll_seconds: float = POLL_SECONDS, monotonic: Callable[[], float] | None = None) -> None:
        self.log = stream_log
        self.sink = sink
        self.segmenter = segmenter
        self._segment_retry_at = float("-inf")
        self._jobs_checked_at = float("-inf")
        self._swept_at = float("-inf")
        self._schedule_chunk = FIRST_SCHEDULE_CHUNK
        self.flush_seconds = flush_seconds
        self.max_records = max_records
        self.poll_seconds = poll_seconds
        self.monotonic = monotonic or time.monotonic

    def _others(self) -> tuple[int, ...]:
        """The offsets of the log's other consumers (pruning stays above them)."""
        return () if self.segmenter is None else (self.segmenter.offset,)

    def _segment(self) -> None:
        """One micro-batch of streaming segmentation, if messages wait, and one sweep of the pairs due. A failure
        is logged and retried after ``SEGMENT_RETRY_SECONDS``, without stopping the flushes (the log keeps what it
        has not applied)."""
        if self.segmenter is None or self.monotonic() < self._segment_retry_at:
            return
        try:
            if self.log.last_seq() > self.segmenter.offset:
                self.segmenter.run_once()
            if self.segmenter.scheduling_members or self.monotonic() >= self._jobs_checked_at + JOB_CHECK_SECONDS:
                self._schedule_job_members()
                self._jobs_checked_at = self.monotonic()
            if self.monotonic() >= self._swept_at + SWEEP_SECONDS and self.segmenter.has_due():
                self._swept_at = self.monotonic()
                self.segmenter.sweep()  # time windows that passed since the last sweep
        except Exception:
            log.exception("streaming segmentation failed; retrying in %.0f s", SEGMENT_RETRY_SECONDS)
            self._segment_retry_at = self.monotonic() + SEGMENT_RETRY_SECONDS

    def _schedule_job_members(self) -> None:
        """A chunk of a job's new members of time-windowed segments given due times, sized from the last chunk's
        time per profile to take about ``SCHEDULE_SECONDS`` (at most twice the last chunk, at most ``SWEEP_BATCH``)."""
        assert self.segmenter is not None
        limit = self._schedule_chunk
        started = self.monotonic()
        done = self.segmenter.schedule_job_members(limit)
        took = self.monotonic() - started
        if done == limit:  # a whole chunk: its time says how many profiles fit in the budget
            fitting = int(done * SCHEDULE_SECONDS / took) if took > 0 else 2 * done
            self._schedule_chunk = max(1, min(fitting, 2 * done, SWEEP_BATCH))

    def run_until_idle(self) -> int:
        """Segment and flush everything logged so far (tests and the CLI); returns how many messages were
        written to the lake."""
        total = 0
        with self.sink.exclusive() as mine:
            if not mine:
                return 0
            if self.segmenter is not None:
                self.segmenter.run_until_idle()
            while True:
                flushed = flush(self.log, self.sink, max_records=self.max_records, others=self._others())
                total += flushed.records
                if flushed.records == 0:
                    self.sink.request_builds(now=True)
                    return total

    def run(self, stop: threading.Event) -> None:
        """Segment and flush until ``stop`` is set (a worker thread, or ``openseg streamer``)."""
        while not stop.is_set():
            try:
                with self.sink.exclusive() as mine:
                    if mine:
                        self._run_holding(stop)
            except Exception:  # pragma: no cover - logged; the offset is unchanged, so the next try redoes it
                log.exception("stream flush failed")
            stop.wait(max(self.poll_seconds, 1.0))

    def _run_holding(self, stop: threading.Event) -> None:
        """While this streamer holds the log: streaming segmentation in this thread, the flushes in a second one
        (a flush took 30-220 ms at 500 messages a second, and when the loop ran both, every message waiting for
        its micro-batch waited for the flush too). A failed flush ends both and is raised here; the caller starts
        again."""
        ended = threading.Event()
        with ThreadPoolExecutor(1, thread_name_prefix="openseg-stream-flush") as flusher:
            flushing = flusher.submit(self._flush_until, stop, ended)
            try:
                while not stop.is_set() and not flushing.done():
                    self._segment()
                    stop.wait(self.poll_seconds)
            finally:
                ended.set()
            flushing.result()

    def _flush_until(self, stop: threading.Event, ended: threading.Event) -> None:
        """Flush every ``flush_seconds``, or at once when ``max_records`` wait, until ``stop`` or ``ended``."""
        # While this streamer holds the lock only its flushes move the offset: read it once.
        offset = self.sink.offset(consumer_name(self.log))
        due = self.monotonic() + self.flush_seconds
        while not stop.is_set() and not ended.is_set():
            self.sink.request_builds()
            waiting = self.log.last_seq() - offset
            if waiting >= self.max_records or (waiting > 0 and self.monotonic() >= due):
                offset = flush(self.log, self.sink, max_records=self.max_records, others=self._others()).through
                due = self.monotonic() + self.flush_seconds
                continue
            if waiting == 0:
                due = self.monotonic() + self.flush_seconds
            ended.wait(self.poll_seconds)
