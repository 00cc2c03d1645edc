"""The lake's files wherever the lake is: a local directory, or an ``s3://`` bucket through PyArrow's S3 file system.

``OPENSEG_LAKE`` is a path (or ``file://`` URI) or ``s3://bucket/prefix``, with PyArrow's S3 options as the URI's
query (``?region=eu-west-1``, ``?endpoint_override=minio:9000&scheme=http`` for an S3-compatible store);
credentials come from where AWS's tools look for them (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``,
``~/.aws``, an instance role).

The catalog records each data file's *location*: its path, or its ``s3://bucket/key`` URI. A process opens an
object store lake once (:func:`open_lake`, from the service container), and from then on every reader of a
location goes through :func:`resolve`: PyArrow readers directly, DuckDB through the fsspec wrapper of the same
file system (:func:`duckdb_filesystems`), so ``read_parquet('s3://...')`` needs no DuckDB extension.

Publishing without renames: an object store has no atomic rename of a folder, so a batch's parts are
written under the batch's own prefix (anything an earlier, unfinished attempt left there removed first), and
the metadata commit that records the batch's files is the pointer every reader follows. No reader lists a
prefix, so a half-written batch is never read; a local lake keeps its rename (:class:`~openseg.atomic_files.StagedDir`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pyarrow.parquet as pq
from pyarrow import fs as pafs

from openseg.atomic_files import DiscardedOnError, StagedDir

#: The object-store schemes an ``OPENSEG_LAKE`` URI may name.
SCHEMES = ("s3",)

_lock = threading.Lock()
#: Per scheme, the file system of the object store lake this process opened.
_opened: dict[str, pafs.FileSystem] = {}
_wrapped: dict[str, Any] = {}


def is_remote(location: str) -> bool:
    """Whether ``location`` is an object store URI rather than a local path."""
    return urlsplit(location).scheme.lower() in SCHEMES


def open_lake(uri: str) -> Lake:
    """The lake at ``uri`` (a local path, or ``s3://bucket/prefix?options``); an object store's file system is
    created once per process and used by :func:`resolve` from then on.

    Raises:
        ValueError: ``uri`` is not a usable ``s3://`` URI (no bucket, an unknown option).
    """
    if not is_remote(uri):
        return Lake(str(Path(uri)))
    scheme = urlsplit(uri).scheme.lower()
    filesystem, root = _object_store(uri)
    with _lock:
        if _opened.get(scheme) is not filesystem:
            _opened[scheme] = filesystem
            _wrapped.pop(scheme, None)
    return Lake(f"{scheme}://{root.rstrip('/')}")


@lru_cache(maxsize=8)
def _object_store(uri: str) -> tuple[pafs.FileSystem, str]:
    """PyArrow's file system for an ``s3://`` URI (without a ``region`` it asks the bucket's), and the root."""
    if not urlsplit(uri).netloc:
        raise ValueError(f"OPENSEG_LAKE: {uri!r} names no bucket (s3://bucket/prefix)")
    try:
        filesystem, root = pafs.FileSystem.from_uri(uri)
    except (ValueError, OSError) as bad:  # pyarrow.ArrowInvalid is a ValueError
        raise ValueError(f"OPENSEG_LAKE: {bad}") from None
    return filesystem, root


def resolve(location: str) -> tuple[pafs.FileSystem, str]:
    """The file system ``location`` is on and its path there."""
    parts = urlsplit(location)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        return pafs.LocalFileSystem(), location
    with _lock:
        filesystem = _opened.get(scheme)
    if filesystem is None:  # a lake this process has not opened: AWS's defaults
        filesystem, path = pafs.FileSystem.from_uri(location)
        return filesystem, path
    return filesystem, f"{parts.netloc}{parts.path}"


def duckdb_filesystems() -> list[Any]:
    """The opened object stores as fsspec file systems, for ``DuckDBPyConnection.register_filesystem``."""
    from fsspec.implementations.arrow import ArrowFSWrapper  # type: ignore[import-untyped]

    with _lock:
        for scheme, filesystem in _opened.items():
            if scheme not in _wrapped:
                _wrapped[scheme] = ArrowFSWrapper(filesystem)
        return list(_wrapped.values())


def stat(location: str) -> tuple[int, int]:
    """``(size, mtime_ns)`` of the file at ``location``.

    Raises:
        FileNotFoundError: Nothing is there.
    """
    if not is_remote(location):
        status = os.stat(location)
        return status.st_size, status.st_mtime_ns
    filesystem, path = resolve(location)
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(location)
    return int(info.size or 0), int(info.mtime_ns or 0)


def exists(location: str) -> bool:
    filesystem, path = resolve(location)
    return bool(filesystem.get_file_info(path).type == pafs.FileType.File)


def parquet_file(location: str) -> pq.ParquetFile:
    """The Parquet file at ``location``, opened for reading."""
    filesystem, path = resolve(location)
    if isinstance(filesystem, pafs.LocalFileSystem):
        return pq.ParquetFile(path)
    return pq.ParquetFile(filesystem.open_input_file(path))


def read_schema(location: str) -> Any:
    filesystem, path = resolve(location)
    return pq.read_schema(path, filesystem=filesystem)


def replace(location: str, written: Path) -> None:
    """Put the local file ``written`` at ``location`` in one step (a rename; an object store's PUT)."""
    filesystem, path = resolve(location)
    if isinstance(filesystem, pafs.LocalFileSystem):
        os.replace(written, path)
        return
    try:
        pafs.copy_files(str(written), path, destination_filesystem=filesystem)
    finally:
        written.unlink(missing_ok=True)


def chunks(location: str, size: int = 1 << 20) -> Iterator[bytes]:
    """The bytes of the file at ``location``, ``size`` at a time."""
    filesystem, path = resolve(location)
    with filesystem.open_input_stream(path) as stream:
        while chunk := stream.read(size):
            yield bytes(chunk)


def scratch_beside(location: str, purpose: str) -> Path:
    """A local path to write a new version of the file at ``location`` into before :func:`replace`: beside it
    in a local lake (so the rename stays on one file system), in the temporary folder for an object store."""
    if not is_remote(location):
        path = Path(location)
        return path.with_name(f".{path.name}.{purpose}")
    handle, name = tempfile.mkstemp(prefix=f"openseg-{purpose}-", suffix=".parquet")
    os.close(handle)
    return Path(name)


@dataclass(frozen=True)
class Lake:
    """Where batches' Parquet parts live: ``{root}/{sandboxId}/{datasetId}/{batchId}/part-NNNNN.parquet``.

    Attributes:
        root: A local directory's path, or ``s3://bucket/prefix``.
    """

    root: str

    @property
    def remote(self) -> bool:
        return is_remote(self.root)

    def location(self, *names: str) -> str:
        """The location of ``names`` under the root (``lake.location(sandbox, dataset, batch)``)."""
        return "/".join((self.root.rstrip("/"), *names))

    def stage(self, location: str, staging: Path) -> StagedParts:
        """Where to write a folder's files before they are published at ``location`` (see the module docstring).

        Args:
            location: The folder's location in the lake.
            staging: A local folder for the files of an object store lake until they are uploaded.
        """
        if self.remote:
            return _Uploaded(location, staging)
        return _Renamed(location)

    def remove(self, location: str) -> None:
        """Remove the folder at ``location`` and everything under it; nothing there is no error."""
        if not self.remote:
            shutil.rmtree(location, ignore_errors=True)
            return
        filesystem, path = resolve(location)
        if filesystem.get_file_info(path).type != pafs.FileType.NotFound:
            filesystem.delete_dir(path)


class StagedParts(DiscardedOnError):
    """A folder's files written locally at :attr:`path`, then published at :attr:`final` (a location)."""

    path: Path
    final: str

    def publish(self) -> None:
        raise NotImplementedError


class _Renamed(StagedParts):
    """A local lake's folder: staged beside its final path and renamed there."""

    def __init__(self, location: str) -> None:
        self._staged = StagedDir(Path(location))
        self.path, self.final = self._staged.path, location

    def publish(self) -> None:
        self._staged.publish()

    def discard(self) -> None:
        self._staged.discard()


class _Uploaded(StagedParts):
    """An object store lake's folder: written in the local staging area, then uploaded under its prefix."""

    def __init__(self, location: str, staging: Path) -> None:
        self.final = location
        # Named after the location, so that a retry removes what a killed attempt left (one writer per location).
        self.path = staging / f"lake-{hashlib.sha256(location.encode()).hexdigest()[:32]}"
        shutil.rmtree(self.path, ignore_errors=True)
        self.path.mkdir(parents=True)
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def publish(self) -> None:
        filesystem, prefix = resolve(self.final)
        # What an unfinished attempt left under the prefix goes first: no reader follows it (see above).
        filesystem.delete_dir_contents(prefix, missing_dir_ok=True)
        for part in sorted(self.path.iterdir()):
            pafs.copy_files(str(part), f"{prefix}/{part.name}", destination_filesystem=filesystem)
        self._cleanup()

    def discard(self) -> None:
        self._cleanup()
