"""The metadata generation (migration 0012): every commit that changes lasting metadata raises it by one, in the
same transaction; commits that change nothing, or only volatile rows (work items, jobs), leave it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update

from openseg.container import Services
from openseg.store.db import Database
from openseg.store.models import Org, Sandbox, WorkItem
from openseg.worker.queue import Queue, enqueue


def _org(services: Services, org_id: str = "GEN@AdobeOrg") -> None:
    with services.db.session() as session:
        session.add(Org(id=org_id, created=1))


def test_a_lasting_change_raises_the_generation_once_per_commit(services: Services) -> None:
    _org(services)
    before = services.db.generation()
    assert before >= 1
    _org(services, "SECOND@AdobeOrg")
    assert services.db.generation() == before + 1
    with services.db.session() as session:  # two rows of two tables, one commit
        session.add(Org(id="OTHER@AdobeOrg", created=1))
        session.add(Sandbox(id="sb-gen", org_id="GEN@AdobeOrg", name="dev", title="Dev", type="development",
                            created=1, updated=1))
    assert services.db.generation() == before + 2


def test_a_changed_row_and_a_bulk_update_count(services: Services) -> None:
    _org(services)
    with services.db.session() as session:
        session.add(Sandbox(id="sb-gen", org_id="GEN@AdobeOrg", name="dev", title="Dev", type="development",
                            created=1, updated=1))
    before = services.db.generation()
    with services.db.session() as session:
        found = session.get(Sandbox, "sb-gen")
        assert found is not None
        found.title = "Development"
    assert services.db.generation() == before + 1
    with services.db.session() as session:
        session.execute(update(Sandbox).where(Sandbox.id == "sb-gen").values(title="Dev again"))
    assert services.db.generation() == before + 2


def test_reads_rollbacks_and_volatile_rows_leave_it(services: Services) -> None:
    _org(services)
    before = services.db.generation()
    with services.db.session() as session:
        assert session.get(Org, "GEN@AdobeOrg") is not None
    with pytest.raises(RuntimeError), services.db.session() as session:
        session.add(Org(id="ROLLED@AdobeOrg", created=1))
        session.flush()
        raise RuntimeError("rolled back")
    with services.db.session() as session:  # queued work, its claim and heartbeats are volatile
        item = enqueue(session, "segment_job", "job-1")
    queue = Queue(services.db)
    claimed = queue.claim("host:1:w")
    assert claimed is not None and claimed.id == item.id
    queue.heartbeat(item.id)
    with services.db.session() as session:
        session.execute(update(WorkItem).values(attempts=WorkItem.attempts + 1))
    queue.finish(item.id)
    assert services.db.generation() == before
    # The next lasting change after a rolled-back one counts once: the rollback left no mark behind.
    _org(services, "NEXT@AdobeOrg")
    assert services.db.generation() == before + 1


def test_the_row_comes_back_if_deleted(services: Services) -> None:
    from openseg.store.models import MetadataGeneration

    with services.db.session() as session:
        session.query(MetadataGeneration).delete()
    assert services.db.generation() == -1  # nothing may be kept on a generation that is not there
    _org(services)
    assert services.db.generation() == 1


def test_a_store_before_migration_0012_has_no_generation(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'bare.db'}")
    try:
        assert db.generation() == -1
    finally:
        db.dispose()


def test_a_lasting_read_is_kept_until_any_process_changes_lasting_metadata(services: Services) -> None:
    reads: list[int] = []

    def read() -> int:
        reads.append(1)
        return len(reads)

    _org(services)
    assert services.lasting(("count",), read) == 1
    assert services.lasting(("count",), read) == 1  # kept: nothing changed
    with services.db.session() as session:  # volatile work does not drop it
        enqueue(session, "segment_job", "job-1")
    assert services.lasting(("count",), read) == 1
    other = Database(services.db.url)  # another process: its own connection to the same store
    try:
        with other.session() as session:
            session.add(Org(id="ELSEWHERE@AdobeOrg", created=1))
    finally:
        other.dispose()
    assert services.lasting(("count",), read) == 2
    assert services.lasting(("other",), read) == 3  # keys are kept apart


def test_an_older_generation_never_replaces_a_newer_ones_reads(tmp_path: Path) -> None:
    from openseg.store.db import Lasting

    kept = Lasting()
    newer = kept.at(5)
    newer[("a",)] = "read at 5"
    late = kept.at(4)  # a thread that read the generation before the commit that made it 5
    late[("a",)] = "read at 4"
    assert kept.at(5) == {("a",): "read at 5"}
    assert kept.at(6) == {} and kept.at(-1) == {}
    assert kept.at(-1) is not kept.at(-1)  # no generation: every caller keeps its own, for its scope only


def test_misses_are_not_kept_and_the_reads_kept_are_bounded(services: Services) -> None:
    from openseg.store.db import Lasting

    misses: list[str] = []
    for _ in range(2):
        assert services.lasting(("credential", "unknown"), lambda: misses.append("read")) is None
    assert misses == ["read", "read"]
    kept = Lasting()
    for i in range(Lasting.MAX_KEYS + 1):
        kept.at(7)[(str(i),)] = i
    assert len(kept.at(7)) == 0  # past the bound, everything is read again


def test_a_sqlite_stores_generation_is_read_again_only_after_a_commit(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Every authenticated request reads the generation: on a SQLite file it asks its own connection whether any
    connection committed since (``PRAGMA data_version``), and queries the generation only then, never through the
    engine's pool. Commits of this process, of another ``Database`` and of a plain connection are all seen."""
    import sqlite3

    path = tmp_path / "openseg.db"
    db, other = Database(f"sqlite:///{path}"), Database(f"sqlite:///{path}")
    try:
        db.migrate()
        with db.session() as session:
            session.add(Org(id="GEN@AdobeOrg", created=1))
        first = db.generation()

        def no_pool(*_: object, **__: object) -> None:
            raise AssertionError("the generation was read through the engine")

        monkeypatch.setattr(db.engine, "connect", no_pool)
        assert [db.generation() for _ in range(3)] == [first] * 3
        with other.session() as session:
            session.add(Org(id="OTHER@AdobeOrg", created=1))
        assert db.generation() == first + 1
        with other.session() as session:  # volatile: a new data version, the same generation
            enqueue(session, "segment_job", "job-1")
        assert db.generation() == first + 1
        plain = sqlite3.connect(path, isolation_level=None)
        plain.execute("UPDATE metadata_generation SET value = value + 5 WHERE id = 1")
        plain.close()
        assert db.generation() == first + 6
    finally:
        db.dispose()
        other.dispose()
