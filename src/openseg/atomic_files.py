"""Files and directories published in one rename: staged beside their final path, then renamed into place.

A staged file or directory is written under a hidden name beside its final path, ``.{name}.partial``
(or ``.{name}.{tag}.partial`` when several are staged beside one another; a name too long for that is
cut and gains a digest), so it is on the same file system and a rename publishes it. Until then readers
of the final path see only what was there before. Use one writer per final path and tag at a time.

What readers of the final path see:

- A file (:class:`StagedFile`): the old file or the new one, each whole (``os.replace`` swaps them in
  one step on one file system).
- A new directory (:class:`StagedDir`): nothing, then the whole directory.
- A directory that replaces one: the old one is renamed aside to ``.{name}.old``, the new one is renamed
  in, then the old one is removed. Content is on disk at every moment, but for the few microseconds
  between the two renames it is at the aside name and the final path does not exist: a reader that opens
  the final path then gets ``FileNotFoundError``, and if it retries it finds the new directory. A reader
  that opened a file of the old directory before the swap keeps reading it (on POSIX an open file outlives
  renames and unlinking). A reader that listed the old directory and opens its files by path after the
  swap opens the new directory's files of those names, where there are any.
- After a failure while staging, or a publish whose second rename fails: the old content at the final
  path (the old directory is renamed back). After the process is killed between the two renames: the old
  directory at ``.{name}.old`` and nothing at the final path, until the next :class:`StagedDir` for that
  path (the retry) renames it back.

What was staged and never published is removed by :meth:`Staged.discard`, on leaving a ``with`` block by
an exception, or when the object is garbage-collected.

Writers that must not overlap (across processes, and hosts sharing the home) take :func:`locked`, an
``flock`` on a lock file or a directory.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Self

#: The longest file name, in bytes, that common file systems (ext4, XFS, APFS, tmpfs) take.
NAME_MAX = 255


def partial_name(name: str, tag: str = "") -> str:
    """The hidden name a file or directory called ``name`` is staged under."""
    return _hidden_name(name, f"{tag}.partial" if tag else "partial")


def _aside_name(name: str) -> str:
    return _hidden_name(name, "old")


def _hidden_name(name: str, suffix: str) -> str:
    """``.{name}.{suffix}``; where that is longer than :data:`NAME_MAX`, the name is cut and a digest of
    the whole name added, so that every name that fits a folder can be staged beside itself."""
    hidden = f".{name}.{suffix}"
    if len(hidden.encode()) <= NAME_MAX:
        return hidden
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    room = max(0, NAME_MAX - len(f".~{digest}.{suffix}".encode()))
    return f".{name.encode()[:room].decode(errors='ignore')}~{digest}.{suffix}"


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        Path(path).unlink(missing_ok=True)


class DiscardedOnError:
    """Something staged that a ``with`` block discards when left by an exception."""

    def discard(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if error is not None:
            self.discard()


class Staged(DiscardedOnError):
    """What :class:`StagedFile` and :class:`StagedDir` share: a staged path, its final path, discarding."""

    def __init__(self, final: Path, tag: str = "") -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        self.final = final
        self.path = final.with_name(partial_name(final.name, tag))
        self._cleanup = weakref.finalize(self, _remove, str(self.path))

    def publish(self, target: Path | None = None) -> None:
        """Rename what was staged to ``target`` (by default :attr:`final`)."""
        target = target or self.final
        target.parent.mkdir(parents=True, exist_ok=True)
        self._rename_into(target)
        self._cleanup.detach()

    def _rename_into(self, target: Path) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """Remove what was staged (nothing happens once published)."""
        self._cleanup()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"


class StagedFile(Staged):
    """A file written at :attr:`path` and published at :attr:`final` by renaming it there, replacing any
    file there.

    Args:
        final: Where the file is published; its folder is created.
        tag: Tells apart files staged for the same final path at the same time.
    """

    def _rename_into(self, target: Path) -> None:
        os.replace(self.path, target)


class StagedDir(Staged):
    """A directory filled at :attr:`path` (created empty) and published at :attr:`final` by renaming it
    there; an existing directory there is renamed aside first and removed after.

    A leftover of an earlier attempt with the same path and tag is removed first, and an old directory
    that a killed publish left aside is put back (see the module docstring).

    Args:
        final: Where the directory is published; its folder is created.
        tag: Tells apart directories staged for the same final path at the same time.
    """

    def __init__(self, final: Path, tag: str = "") -> None:
        super().__init__(final, tag)
        _restore_aside(final)
        _remove(str(self.path))
        self.path.mkdir()

    def _rename_into(self, target: Path) -> None:
        _replace_dir(self.path, target)


class StagedOutput(Staged):
    """What an engine writes at :attr:`path`: one file, or a directory of part files where it writes in
    parallel (Spark). Published as a :class:`StagedFile` or a :class:`StagedDir`, whichever it is.

    Args:
        final: Where the output is published; its folder is created.
        tag: Tells apart outputs staged for the same final path at the same time.
    """

    def __init__(self, final: Path, tag: str = "") -> None:
        super().__init__(final, tag)
        _restore_aside(final)

    def _rename_into(self, target: Path) -> None:
        if self.path.is_dir():
            _replace_dir(self.path, target)
        else:
            os.replace(self.path, target)


def _replace_dir(path: Path, target: Path) -> None:
    """Rename the directory ``path`` to ``target``, setting an existing ``target`` aside first."""
    if not os.path.lexists(target):
        os.rename(path, target)
        return
    aside = target.with_name(_aside_name(target.name))
    _remove(str(aside))
    os.rename(target, aside)
    try:
        os.rename(path, target)
    except BaseException:
        os.rename(aside, target)
        raise
    _remove(str(aside))


def _restore_aside(final: Path) -> None:
    """Finish what a publish killed between its two renames left: the old directory goes back to
    ``final`` when nothing is there, and is removed when the new one is."""
    aside = final.with_name(_aside_name(final.name))
    if not os.path.lexists(aside):
        return
    if os.path.lexists(final):
        _remove(str(aside))
    else:
        os.rename(aside, final)


@contextmanager
def locked(path: Path, *, shared: bool = False, wait: bool = True) -> Iterator[bool]:
    """Hold an ``flock`` on ``path`` while inside: exclusive, or ``shared`` with other shared holders.

    The kernel drops the lock of a process that dies, so a killed holder never blocks the next one.

    Args:
        path: A directory (which must exist; locking it leaves no file in it), or else a lock file, created
            with its folder if missing.
        shared: Take a shared lock rather than an exclusive one.
        wait: Wait until the lock is free; otherwise yield False at once when someone else holds it.

    Yields:
        Whether the lock is held (always True when ``wait``).
    """
    if path.is_dir():
        descriptor = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        operation = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        try:
            fcntl.flock(descriptor, operation if wait else operation | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
