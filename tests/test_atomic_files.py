"""Staged files and directories: published in one rename, discarded on failure, never half-visible; and the
file lock (``locked``) that writers which must not overlap take."""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from openseg import atomic_files
from openseg.atomic_files import StagedDir, StagedFile, StagedOutput, locked, partial_name


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_staged_file_waits_under_a_hidden_name_until_published(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "data.parquet"
    staged = StagedFile(final)
    staged.path.write_text("new")
    assert staged.path == final.with_name(".data.parquet.partial") and not final.exists()
    staged.publish()
    assert final.read_text() == "new"
    assert listing(final.parent) == ["data.parquet"]


def test_a_tag_tells_apart_files_staged_for_one_path() -> None:
    assert partial_name("a.json", "state") == ".a.json.state.partial"
    assert partial_name("a.json") == ".a.json.partial"


@pytest.mark.parametrize("name", ["a" * 255, "é" * 127, "a" * 250 + "é" * 2])
def test_names_too_long_for_a_suffix_are_staged_under_a_shortened_hidden_name(tmp_path: Path, name: str) -> None:
    staged = StagedFile(tmp_path / name)
    assert staged.path.name.startswith(".") and staged.path.name.endswith(".partial")
    assert len(staged.path.name.encode()) <= atomic_files.NAME_MAX
    assert staged.path != StagedFile(tmp_path / (name[:-1] + "b")).path
    staged.path.write_text("new")
    staged.publish()
    assert listing(tmp_path) == [name]
    directory = StagedDir(tmp_path / name[:-1])
    directory.publish()
    replacing = StagedDir(tmp_path / name[:-1])
    (replacing.path / "part").write_text("new")
    replacing.publish()
    assert listing(tmp_path) == sorted([name, name[:-1]])


def test_publishing_a_file_replaces_the_old_one_whole(tmp_path: Path) -> None:
    final = tmp_path / "data.txt"
    final.write_text("old")
    staged = StagedFile(final, "job")
    staged.path.write_text("new")
    assert final.read_text() == "old"
    staged.publish()
    assert final.read_text() == "new"
    assert listing(tmp_path) == ["data.txt"]


def test_a_file_can_be_published_elsewhere(tmp_path: Path) -> None:
    staged = StagedFile(tmp_path / "planned.txt")
    staged.path.write_text("new")
    staged.publish(tmp_path / "other" / "chosen.txt")
    assert (tmp_path / "other" / "chosen.txt").read_text() == "new"
    assert listing(tmp_path) == ["other"]


def test_discarding_removes_what_was_staged_and_keeps_the_old_file(tmp_path: Path) -> None:
    final = tmp_path / "data.txt"
    final.write_text("old")
    staged = StagedFile(final)
    staged.path.write_text("half")
    staged.discard()
    staged.discard()
    assert listing(tmp_path) == ["data.txt"] and final.read_text() == "old"


def test_an_exception_in_a_with_block_discards_and_leaves_the_old_file(tmp_path: Path) -> None:
    final = tmp_path / "data.txt"
    final.write_text("old")
    with pytest.raises(OSError, match="disk full"), StagedFile(final) as staged:
        staged.path.write_text("half")
        raise OSError("disk full")
    assert listing(tmp_path) == ["data.txt"] and final.read_text() == "old"


def test_what_is_never_published_goes_when_garbage_collected(tmp_path: Path) -> None:
    staged_file = StagedFile(tmp_path / "data.txt")
    staged_file.path.write_text("abandoned")
    staged_dir = StagedDir(tmp_path / "batch")
    (staged_dir.path / "part-00000.parquet").write_text("abandoned")
    del staged_file, staged_dir
    gc.collect()
    assert listing(tmp_path) == []


def test_a_published_file_stays_when_its_object_goes(tmp_path: Path) -> None:
    staged = StagedFile(tmp_path / "data.txt")
    staged.path.write_text("new")
    staged.publish()
    staged.discard()
    del staged
    gc.collect()
    assert (tmp_path / "data.txt").read_text() == "new"


def test_a_staged_directory_appears_whole(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    staged = StagedDir(final)
    assert staged.path == tmp_path / ".batch.partial" and listing(staged.path) == []
    (staged.path / "part-00000.parquet").write_text("a")
    (staged.path / "part-00001.parquet").write_text("b")
    assert not final.exists()
    staged.publish()
    assert listing(final) == ["part-00000.parquet", "part-00001.parquet"]
    assert listing(tmp_path) == ["batch"]


def test_a_staged_directory_replaces_an_existing_one(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    final.mkdir()
    (final / "part-00000.parquet").write_text("old")
    (final / "part-00001.parquet").write_text("old")
    staged = StagedDir(final)
    (staged.path / "part-00000.parquet").write_text("new")
    staged.publish()
    assert listing(final) == ["part-00000.parquet"] and (final / "part-00000.parquet").read_text() == "new"
    assert listing(tmp_path) == ["batch"]


def test_a_reader_with_a_file_of_the_old_directory_open_reads_it_to_the_end(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    final.mkdir()
    (final / "part-00000.parquet").write_text("old content")
    staged = StagedDir(final)
    (staged.path / "part-00000.parquet").write_text("new content")
    with (final / "part-00000.parquet").open() as reader:
        assert reader.read(4) == "old "
        staged.publish()
        assert reader.read() == "content"
    assert (final / "part-00000.parquet").read_text() == "new content"


def test_a_failure_while_staging_a_directory_leaves_the_old_one(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    final.mkdir()
    (final / "part-00000.parquet").write_text("old")
    with pytest.raises(RuntimeError, match="cancelled"), StagedDir(final) as staged:
        (staged.path / "part-00000.parquet").write_text("half")
        raise RuntimeError("cancelled")
    assert listing(tmp_path) == ["batch"] and (final / "part-00000.parquet").read_text() == "old"


def test_a_directory_whose_rename_in_fails_puts_the_old_one_back(tmp_path: Path, monkeypatch: Any) -> None:
    final = tmp_path / "batch"
    final.mkdir()
    (final / "part-00000.parquet").write_text("old")
    staged = StagedDir(final)
    (staged.path / "part-00000.parquet").write_text("new")
    rename = os.rename

    def failing(source: Any, target: Any) -> None:
        if Path(source) == staged.path:
            raise OSError("rename failed")
        rename(source, target)

    monkeypatch.setattr(atomic_files.os, "rename", failing)
    with pytest.raises(OSError, match="rename failed"):
        staged.publish()
    monkeypatch.undo()
    assert (final / "part-00000.parquet").read_text() == "old"
    staged.discard()
    assert listing(tmp_path) == ["batch"]


#: Publishes a directory over an old one and is killed right after its first rename.
KILLED_BETWEEN_RENAMES = """
import os, signal, sys
from pathlib import Path
from openseg import atomic_files

staged = atomic_files.StagedDir(Path(sys.argv[1]))
(staged.path / "part-00000.parquet").write_text("new")
rename = os.rename

def rename_then_die(source, target):
    rename(source, target)
    os.kill(os.getpid(), signal.SIGKILL)

atomic_files.os.rename = rename_then_die
staged.publish()
"""


def test_a_publish_killed_between_its_renames_leaves_the_old_directory_readable(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    final.mkdir()
    (final / "part-00000.parquet").write_text("old")
    src = str(Path(atomic_files.__file__).parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    died = subprocess.run([sys.executable, "-c", KILLED_BETWEEN_RENAMES, str(final)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert died.returncode == -signal.SIGKILL, died.stderr
    # The old directory waits aside, whole; the new one is still staged; nothing is at the final path.
    assert listing(tmp_path) == [".batch.old", ".batch.partial"]
    assert (tmp_path / ".batch.old" / "part-00000.parquet").read_text() == "old"
    # The retry puts the old one back before it stages anew, then publishes over it.
    retry = StagedDir(final)
    assert (final / "part-00000.parquet").read_text() == "old"
    assert listing(tmp_path) == [".batch.partial", "batch"] and listing(retry.path) == []
    (retry.path / "part-00000.parquet").write_text("retried")
    retry.publish()
    assert listing(tmp_path) == ["batch"] and (final / "part-00000.parquet").read_text() == "retried"


def test_an_old_directory_left_aside_after_the_new_one_went_in_is_removed(tmp_path: Path) -> None:
    final = tmp_path / "batch"
    final.mkdir()
    (final / "part-00000.parquet").write_text("new")
    aside = tmp_path / ".batch.old"
    aside.mkdir()
    (aside / "part-00000.parquet").write_text("old")
    StagedDir(final).discard()
    assert listing(tmp_path) == ["batch"] and (final / "part-00000.parquet").read_text() == "new"


def test_an_engine_output_is_published_whether_it_wrote_a_file_or_a_directory_of_parts(tmp_path: Path) -> None:
    single = StagedOutput(tmp_path / "one.parquet", "current")
    single.path.write_text("whole")
    single.publish()
    parts = StagedOutput(tmp_path / "many.parquet", "current")
    parts.path.mkdir()  # what Spark's executors leave: a directory of part files
    (parts.path / "part-00000.parquet").write_text("a")
    parts.publish()
    again = StagedOutput(tmp_path / "many.parquet", "current")  # a retried job writes the same name
    again.path.mkdir()
    (again.path / "part-00001.parquet").write_text("b")
    again.publish()
    assert (tmp_path / "one.parquet").read_text() == "whole"
    assert listing(tmp_path / "many.parquet") == ["part-00001.parquet"]
    assert listing(tmp_path) == ["many.parquet", "one.parquet"]
    dropped = StagedOutput(tmp_path / "never.parquet")
    dropped.path.mkdir()
    del dropped
    gc.collect()
    assert listing(tmp_path) == ["many.parquet", "one.parquet"]


def test_an_exclusive_lock_turns_away_every_other_holder(tmp_path: Path) -> None:
    lock_file = tmp_path / "sub" / ".job.lock"
    with locked(lock_file) as held:
        assert held and lock_file.is_file()  # created with its folder
        with locked(lock_file, wait=False) as second, locked(lock_file, shared=True, wait=False) as reader:
            assert (second, reader) == (False, False)


def test_shared_locks_hold_together_and_turn_away_an_exclusive_one(tmp_path: Path) -> None:
    lock_file = tmp_path / ".lock"
    with locked(lock_file, shared=True) as first, locked(lock_file, shared=True, wait=False) as second:
        assert (first, second) == (True, True)
        with locked(lock_file, wait=False) as writer:
            assert writer is False


def test_a_directory_is_locked_without_a_file_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    folder.mkdir()
    with locked(folder, shared=True) as reading:
        assert reading
        with locked(folder, wait=False) as alone:
            assert alone is False
    with locked(folder, wait=False) as alone:
        assert alone
    assert listing(tmp_path) == ["store"] and listing(folder) == []


def test_a_lock_is_released_on_leaving_its_block_even_by_an_exception(tmp_path: Path) -> None:
    lock_file = tmp_path / ".lock"
    with locked(lock_file):
        pass
    with locked(lock_file, wait=False) as held:
        assert held
    with pytest.raises(RuntimeError), locked(lock_file):
        raise RuntimeError("the holder fails")
    with locked(lock_file, wait=False) as held:
        assert held


def test_a_waiting_lock_is_taken_when_the_holder_leaves(tmp_path: Path) -> None:
    lock_file = tmp_path / ".lock"
    taken = threading.Event()

    def wait_for_it() -> None:
        with locked(lock_file) as held:
            assert held
            taken.set()

    with locked(lock_file):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        assert not taken.wait(0.2)
    waiter.join(timeout=10)
    assert taken.is_set()
