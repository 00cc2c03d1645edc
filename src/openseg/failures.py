"""What a job, batch or request tells its user when the machine, not the user, made it fail.

Engines and libraries report the same fault in their own words (``OSError`` with ``errno.ENOSPC`` from
Python, an ``IOException`` naming the file from DuckDB, a Py4J error from Spark). :func:`describe` turns the
faults a user can act on into one plain sentence without the server's file paths; anything else keeps its
type and message.
"""

from __future__ import annotations

import errno
import re
from pathlib import Path

from openseg.errors import Conflict

#: The error code of a job or batch that failed because the disk holding openseg's data is full.
DISK_FULL = "0090000013"

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_DISK_FULL_WORDS = ("No space left on device", "Disk quota exceeded")

DISK_FULL_MESSAGE = ("no space left on the disk that holds openseg's data (OPENSEG_HOME, OPENSEG_LAKE): "
                     "nothing was changed; free some space and try again")


#: The error code of a request or job that met a damaged file in the lake.
DAMAGED_FILE = "0090000014"


class DamagedBatch(Conflict):
    """A file of a successful batch can no longer be read (changed or damaged on disk since it was
    written): the batch is named, so that its owner can delete it or ingest it again."""

    def __init__(self, dataset_id: str, batch_id: str, reason: str) -> None:
        super().__init__(
            f"a file of batch '{batch_id}' (dataset '{dataset_id}') cannot be read ({reason}): the lake was changed "
            "or damaged outside openseg; delete the batch or ingest it again",
            report={"code": DAMAGED_FILE, "datasetId": dataset_id, "batchId": batch_id})
        self.dataset_id = dataset_id
        self.batch_id = batch_id


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the disk is full."""
    for error in _chain(exc):
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return True
        if any(words in str(error) for words in _DISK_FULL_WORDS):
            return True
    return False


def describe(exc: BaseException, lake: str | Path | None = None) -> str:
    """One line for the user: the fault in plain words where it is one they can act on, else the
    exception's type and message, with any path of a file in ``lake`` told as the batch and dataset it
    belongs to (``{lake}/{sandbox}/{dataset}/{batch}/...``) rather than where it lies on the server."""
    if is_disk_full(exc):
        return DISK_FULL_MESSAGE
    if isinstance(exc, DamagedBatch):
        return exc.detail
    message = f"{type(exc).__name__}: {exc}"
    if lake is not None:
        # An object store lake's keys appear with their scheme (DuckDB) or without it (PyArrow).
        root = "(?:s3://)?" + re.escape(str(lake).rstrip("/").removeprefix("s3://"))
        message = re.sub(root + r"/[^/'\"\s]+/([^/'\"\s]+)/([^/'\"\s]+)/[^'\"\s]*",
                         lambda m: f"a file of batch '{m.group(2)}' (dataset '{m.group(1)}')", message)
    return message
