"""Request lanes in processes of their own (``api/lanes.LaneProcesses``, ``OPENSEG_API_PROCESSES``): profile
lookups and edge calls answered by a lane's process are those its threads give, errors included; a lane whose
process is killed answers again."""

from __future__ import annotations

import os
import pickle
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.api.app import create_app
from openseg.api.lanes import LaneProcesses, LaneUnavailable
from openseg.config import Settings
from openseg.container import Services
from openseg.errors import OpensegError
from openseg.profiles import entities
from openseg.profiles.entities import ProfileNotFound
from openseg.streaming import edge
from tests.api import lane_probe
from tests.edge import test_edge
from tests.edge.test_edge import Edgy, edge_event, interact, lookup

ENTITY = "/data/core/ups/access/entities"
edge_sandbox = test_edge.edgy  # the edge tests' fixture, used here by that name


def entity(client: TestClient, edgy: Edgy, profile: str) -> Any:
    return client.get(ENTITY, headers=edgy.org.headers(), params={"entityId": f"{profile}@example.com",
                                                                  "entityIdNS": "email"})


@pytest.fixture
def in_processes(services: Services, settings: Settings) -> Iterator[tuple[TestClient, LaneProcesses]]:
    """A second app over the same services whose edge and lookups lanes run in a process each."""
    lanes = LaneProcesses(settings, {"edge": 1, "lookups": 1})
    with TestClient(create_app(services, run_worker=False, lane_processes=lanes)) as client:
        yield client, lanes


def test_lookups_and_edge_calls_answered_in_lane_processes_are_those_of_threads(
        client: TestClient, edge_sandbox: Edgy, in_processes: tuple[TestClient, LaneProcesses],
        monkeypatch: pytest.MonkeyPatch) -> None:
    threaded = [entity(client, edge_sandbox, p) for p in ("p1", "p2", "nobody")]
    assert [r.status_code for r in threaded] == [200, 200, 404]
    processes, lanes = in_processes
    assert lanes.pids("lookups") and os.getpid() not in lanes.pids("lookups") + lanes.pids("edge")

    def not_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a lookup ran in the API's process")

    monkeypatch.setattr(entities, "locate", not_here)  # this process's only: a lane's process has its own
    answered = [entity(processes, edge_sandbox, p) for p in ("p1", "p2", "nobody")]
    assert [(r.status_code, r.json(), r.headers.get("x-openseg-profile-build")) for r in answered] == \
        [(r.status_code, r.json(), r.headers.get("x-openseg-profile-build")) for r in threaded]
    # The edge (its own clock: real time) answers the profile-only segment; p0 qualifies for nothing.
    assert interact(processes, edge_sandbox, edge_event("p1")).json() == lookup(edge_sandbox.us)
    assert interact(processes, edge_sandbox, edge_event("p0")).json() == lookup()
    unknown = interact(processes, edge_sandbox, edge_event("p0"), dataStreamId="nope")
    assert unknown.status_code == 400 and unknown.headers["content-type"] == "application/problem+json"
    assert unknown.json()["type"] == interact(client, edge_sandbox, edge_event("p0"), dataStreamId="nope").json()["type"]


def test_a_lane_whose_process_was_killed_answers_again(edge_sandbox: Edgy,
                                                       in_processes: tuple[TestClient, LaneProcesses]) -> None:
    processes, lanes = in_processes
    assert entity(processes, edge_sandbox, "p1").status_code == 200
    (pid,) = lanes.pids("lookups")
    os.kill(pid, signal.SIGKILL)
    statuses = []
    deadline = time.monotonic() + 60
    while not statuses or statuses[-1] != 200:
        assert time.monotonic() < deadline, statuses
        response = entity(processes, edge_sandbox, "p1")
        statuses.append(response.status_code)
        if response.status_code == 503:  # the request the dead process held, at most
            assert response.json()["title"] == "Service unavailable"
    assert statuses in ([200], [503, 200])
    assert lanes.pids("lookups") and pid not in lanes.pids("lookups")


@pytest.mark.parametrize("error", [ProfileNotFound("email", "x@example.com", None),
                                   edge.InvalidDatastream("no such datastream", field="dataStreamId")])
def test_errors_cross_processes_whole(error: OpensegError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.__dict__) == (type(error), str(error), error.__dict__)



def test_edge_calls_answered_in_a_lane_process_are_logged_by_the_server(
        services: Services, edge_sandbox: Edgy, in_processes: tuple[TestClient, LaneProcesses],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The log has one writer, the server: a lane process writing it too would wait on the server's lock (SQLite's
    busy sleeps, up to 100 ms each) between its calls."""
    from openseg.store.stream_log import SqliteStreamLog

    appended: list[str] = []
    submit = SqliteStreamLog.submit  # what append calls, and what the event loop awaits once the log is open

    def server_submit(log: SqliteStreamLog, entries: Any) -> Any:
        appended.extend(entry.record["eventType"] for entry in entries)
        return submit(log, entries)

    monkeypatch.setattr(SqliteStreamLog, "submit", server_submit)  # this process's only
    processes, _ = in_processes
    assert interact(processes, edge_sandbox, edge_event("p1", "one")).status_code == 200
    collected = processes.post("/ee/v2/collect", headers=edge_sandbox.org.headers(),
                               params={"dataStreamId": edge_sandbox.datastream},
                               json={"events": [edge_event("p2", "two")["event"], edge_event("p3", "three")["event"]]})
    assert collected.status_code == 202, collected.text
    assert interact(processes, edge_sandbox, edge_event("p0"), dataStreamId="nope").status_code == 400
    assert appended == ["one", "two", "three"]
    assert [m.entry.record["eventType"] for m in services.stream_log().read(0, 10)] == ["one", "two", "three"]


def test_a_lane_process_has_imported_its_handlers_before_its_first_request(settings: Settings) -> None:
    # Its first requests imported them otherwise, inside the latency they promise.
    from openseg.api.lanes import PRELOADED

    lanes = LaneProcesses(settings, {"edge": 1})
    lanes.start()
    try:
        # The probe's module imports nothing of openseg (unpickling the work imports its module in the process).
        assert lanes.submit("edge", lane_probe.imported, PRELOADED).result(timeout=60) == list(PRELOADED)
        # ...and left what they made out of garbage collections, whose full walks of it paused requests 100-200 ms.
        assert lanes.submit("edge", lane_probe.frozen).result(timeout=60) > 50_000
    finally:
        lanes.stop()


def test_a_lane_queues_what_its_processes_cannot_take_yet_and_stops_after_what_they_hold(settings: Settings) -> None:
    lanes = LaneProcesses(settings, {"edge": 1})
    lanes.start()
    try:
        queued = [lanes.submit("edge", lane_probe.slow, 0.2, n) for n in range(3)]
        answers = [answer.result(timeout=60) for answer in queued]
        assert [tag for tag, _ in answers] == [0, 1, 2] and {pid for _, pid in answers} == set(lanes.pids("edge"))
        # What cannot cross fails its own request, not the lane.
        with pytest.raises(RuntimeError, match="could not be sent back"):
            lanes.submit("edge", lane_probe.unpicklable).result(timeout=60)
        with pytest.raises((pickle.PicklingError, AttributeError)):
            lanes.submit("edge", lambda services: None).result(timeout=60)
        assert lanes.submit("edge", lane_probe.slow, 0, "still").result(timeout=60)[0] == "still"
        held, waiting = lanes.submit("edge", lane_probe.slow, 0.5, "held"), lanes.submit("edge", lane_probe.slow, 0, "w")
        time.sleep(0.2)
    finally:
        lanes.stop()
    assert held.result(timeout=0)[0] == "held"
    assert isinstance(waiting.exception(timeout=0), LaneUnavailable)
    assert lanes.pids("edge") == []
    with pytest.raises(LaneUnavailable):
        lanes.submit("edge", lane_probe.slow, 0, "late")
