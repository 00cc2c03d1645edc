"""``python -m benchmarks.streamer_cpu HOME [--start N] [--messages N] [--batch N]``: the streamer's CPU per
message over the home a streaming bench left (``python -m benchmarks.streaming`` keeps it under the temporary
directory: ``/tmp/openseg-streaming-*``, 1M profiles with ``BENCH_SIZE=1m``).

The streaming bench's latencies swing tenfold from run to run on two shared cores; the CPU the streamer takes
per message does not, and it is what P5 waits on (the streamer is runnable most of the window and gets about
half a core). This sends ``--messages`` pings of the bench's kind through the collection endpoint (in this
process, no server) to profiles from ``--start`` on in the bench's CRMID order (the bench's window streamed to
the first 30,000: start past them, and past those an earlier run of this used), ``--batch`` at a time, and runs
streaming segmentation's micro-batches after each batch: only those are timed (this process's CPU).

To compare two versions, run each from its own checkout (``PYTHONPATH=<checkout>/src:<checkout>``) on fresh
profiles, alternately, a few times: one run moves by about a tenth.
"""

from __future__ import annotations

import argparse
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from fastapi.testclient import TestClient

from benchmarks.run import DATA_ROOT
from benchmarks.streaming import _crmids, _event, _now
from openseg.api.app import create_app
from openseg.bootstrap import build_services, streamer
from openseg.config import Settings
from openseg.streaming.segmenter import StreamSegmenter


def cpu_per_message(segmenter: StreamSegmenter, send: Callable[[int], None], messages: int,
                    batch: int) -> tuple[int, float]:
    """Send ``messages`` messages (``send(i)``), ``batch`` at a time, and after each batch run ``segmenter`` until
    it has read them; how many it read and the CPU seconds its micro-batches took (this process's, sends left
    out). What the log held before is read first, untimed."""
    segmenter.run_until_idle()
    read, spent = 0, 0.0
    for first in range(0, messages, batch):
        for i in range(first, min(messages, first + batch)):
            send(i)
        started = time.process_time()
        while done := segmenter.run_once().messages:
            read += done
        spent += time.process_time() - started
    return read, spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("home", type=Path, help="a streaming bench's home")
    parser.add_argument("--start", type=int, default=35_000, help="the first profile, in the bench's CRMID order")
    parser.add_argument("--messages", type=int, default=2_500)
    parser.add_argument("--batch", type=int, default=50, help="messages per micro-batch (500/s polled every 0.1 s)")
    parser.add_argument("--data", type=Path, default=DATA_ROOT / "1m-seed42", help="the bench's data set")
    args = parser.parse_args()
    services = build_services(Settings.from_env(home=args.home, env={"OPENSEG_STREAMER": "off"}))
    with sqlite3.connect(args.home / "openseg.db") as db:
        (inlet,) = db.execute("SELECT inlet_id FROM streaming_connections").fetchone()
    crmids = _crmids(args.data)[args.start:args.start + args.messages]
    if len(crmids) < args.messages:
        raise SystemExit(f"the data set has {len(crmids) + args.start} CRMIDs: start lower or send fewer")
    with TestClient(create_app(services, run_worker=False)) as client:

        def send(i: int) -> None:
            answer = client.post(f"/collection/{inlet}", json=_event(args.start + i, crmids[i], _now()))
            answer.raise_for_status()

        segmenter = streamer(services).segmenter
        assert segmenter is not None
        read, spent = cpu_per_message(segmenter, send, args.messages, args.batch)
    print(f"{read:,} messages in micro-batches of {args.batch}: {1000 * spent / max(read, 1):.3f} ms of CPU each")


if __name__ == "__main__":
    main()
