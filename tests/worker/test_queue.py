"""The work queue: exclusive claims, crash recovery by heartbeat and by dead local process."""

from __future__ import annotations

import socket
import threading

from openseg.container import Services
from openseg.store.models import WorkItem
from openseg.worker.queue import Queue, enqueue


def _items(services: Services, ref: str) -> list[WorkItem]:
    with services.db.session() as session:
        return list(session.query(WorkItem).filter(WorkItem.ref_id == ref))


def test_each_item_is_claimed_once_by_concurrent_workers(services: Services) -> None:
    with services.db.session() as session:
        for i in range(20):
            enqueue(session, "noop", f"claim-{i}")
    queue = Queue(services.db)
    claimed: list[list[str]] = [[], []]

    def take(index: int) -> None:
        while (item := queue.claim(f"w{index}", ("noop",))) is not None:
            claimed[index].append(item.ref_id)
            queue.finish(item.id)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = claimed[0] + claimed[1]
    assert sorted(everything) == sorted(f"claim-{i}" for i in range(20))
    assert len(set(everything)) == 20


def test_items_of_a_dead_local_worker_come_back_at_once(services: Services) -> None:
    with services.db.session() as session:
        enqueue(session, "noop", "dead")
        enqueue(session, "noop", "alive")
    queue = Queue(services.db)
    host = socket.gethostname()
    dead = queue.claim(f"{host}:999999999:x", ("noop",))
    alive = queue.claim(f"{host}:1:x", ("noop",))  # pid 1 exists
    assert dead is not None and alive is not None
    assert services.worker is not None
    assert services.worker.recover_dead_local() == 1
    assert [i.status for i in _items(services, dead.ref_id)] == ["queued"]
    assert [i.status for i in _items(services, alive.ref_id)] == ["running"]
