"""The streamer's CPU per message (benchmarks/streamer_cpu.py): it times streaming segmentation of every message
it sends, and only that."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from benchmarks.streamer_cpu import cpu_per_message
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import create_dataset, person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, create_inlet
from tests.streaming.test_streaming_segmentation import (
    RECENT_US_VIEWER,
    T0,
    Clock,
    define,
    post,
    streamer,
    ups,
    view,
)


def test_each_message_sent_is_segmented_in_the_batches_it_times(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(i) for i in range(1, 8)])  # the odd ones live in the US
    segment = define(client, org, "recent US viewers", RECENT_US_VIEWER)
    inlet = create_inlet(client, org, create_dataset(client, org.headers(), "events", EVENT_SCHEMA))
    post(client, inlet, view(0, 1, T0))  # in the log before: read first, not counted
    segmenter = streamer(services, Clock()).segmenter
    assert segmenter is not None
    sent: list[int] = []

    def send(i: int) -> None:
        sent.append(i)
        post(client, inlet, view(i + 1, i + 2, T0 - dt.timedelta(minutes=1)))

    read, spent = cpu_per_message(segmenter, send, 5, 2)
    assert (read, sent) == (5, [0, 1, 2, 3, 4])
    assert spent > 0
    realized = {"status": "realized", "lastQualificationTime": "2026-12-02T10:00:00Z"}
    # p1 by the view logged before; p3 and p5 by views sent; p2, p4 and p6 are not in the US; p7 saw nothing.
    assert [bool(ups(client, org, f"p{p}@example.com")) for p in range(1, 8)] == [True, False, True, False, True,
                                                                                    False, False]
    assert ups(client, org, "p3@example.com") == {segment["id"]: realized}
