"""Request lanes (``api/lanes.py``): profile lookups that fill their lane hold back neither a streamed message's
acknowledgement nor any other route, and never take more threads than their lane has."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.api.lanes import LANES
from openseg.container import Services
from openseg.errors import NotFound
from openseg.profiles import entities
from tests.api.flows import create_dataset
from tests.conftest import Org
from tests.streaming.inlets import EVENT_SCHEMA, click, create_inlet, envelope

ENTITY = "/data/core/ups/access/entities"


def test_lookups_filling_their_lane_hold_back_neither_acknowledgements_nor_other_routes(
        client: TestClient, services: Services, org: Org, monkeypatch: pytest.MonkeyPatch) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id)["auth"]["params"]["inletId"]
    release = threading.Event()
    inside: list[int] = []
    lock = threading.Lock()

    def slow_locate(*args: Any, **kwargs: Any) -> Any:
        with lock:
            inside.append(threading.get_ident())
        release.wait(30)
        raise NotFound("no such profile")

    monkeypatch.setattr(entities, "locate", slow_locate)
    lookups = LANES["lookups"]
    with ThreadPoolExecutor(lookups + 3) as pool:
        waiting = [pool.submit(client.get, ENTITY, headers=org.headers(),
                               params={"entityId": f"p{i}@example.com", "entityIdNS": "email"})
                   for i in range(lookups + 3)]
        deadline = time.monotonic() + 10
        while len(inside) < lookups and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        assert len(inside) == lookups  # the lane is full; three lookups queue behind it
        started = time.monotonic()
        acknowledged = client.post(f"/collection/{inlet}", json=envelope(click(1)))
        listed = client.get("/data/foundation/catalog/dataSets", headers=org.headers())
        took = time.monotonic() - started
        assert acknowledged.status_code == 200, acknowledged.text
        assert listed.status_code == 200 and took < 5
        assert len(inside) == lookups
        release.set()
        answers = [future.result(timeout=30) for future in waiting]
    assert [a.status_code for a in answers] == [404] * (lookups + 3)
    assert len(inside) == lookups + 3
