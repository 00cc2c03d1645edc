"""Large-file upload (AEP's batch ingestion, files over 256 MB): INITIALIZE, parts by ``Content-Range``, COMPLETE.

A file being uploaded in parts is a folder ``{staging}/{batchId}/.large/{name}/`` (a file name never starts
with a dot, so it cannot meet an uploaded file); each part is one file in it, named after its byte range
(``{first}-{last}.{total}``, zero-padded so names sort by offset) and published whole in one rename
(``atomic_files``), so a listing never sees half a part. COMPLETE checks that the parts cover the file from
byte 0 without a gap or an overlap, writes them in order into the batch's staged file (again published in one
rename) and removes the folder; the batch then has this file as if it had been uploaded by one PUT.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from openseg.atomic_files import StagedFile
from openseg.errors import BadRequest, NotFound

#: The largest part AEP takes in one PATCH ("File sizes of between 0-512000000 bytes are accepted").
MAX_PART_BYTES = 512_000_000
_UNKNOWN = "unknown"
_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")
_PART = re.compile(r"^(\d{20})-(\d{20})\.(\d+|unknown)$")


@dataclass(frozen=True)
class ByteRange:
    """The bytes ``first`` to ``last`` (inclusive) of a file of ``total`` bytes (None: not said)."""

    first: int
    last: int
    total: int | None = None

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def part_name(self) -> str:
        return f"{self.first:020d}-{self.last:020d}.{self.total if self.total is not None else _UNKNOWN}"


def parse_content_range(value: str | None) -> ByteRange:
    """``Content-Range: bytes {first}-{last}/{total}`` (or ``/*``), as a part of a large file.

    Raises:
        BadRequest: a missing or malformed header, a range past the total, or a part over 512,000,000 bytes.
    """
    if not value:
        raise BadRequest("the 'Content-Range' header is required: 'bytes {first}-{last}/{total}', for example "
                         "'bytes 0-1048575/8264006456'", field="Content-Range")
    match = _CONTENT_RANGE.match(value)
    if match is None:
        raise BadRequest(f"'Content-Range: {value}' is not 'bytes {{first}}-{{last}}/{{total}}'", field="Content-Range")
    first, last = int(match[1]), int(match[2])
    total = None if match[3] == "*" else int(match[3])
    if last < first:
        raise BadRequest(f"'Content-Range: {value}': the last byte comes before the first", field="Content-Range")
    if total is not None and last >= total:
        raise BadRequest(f"'Content-Range: {value}': byte {last} is past the end of a file of {total} bytes",
                         field="Content-Range")
    part = ByteRange(first, last, total)
    if part.length > MAX_PART_BYTES:
        raise BadRequest(f"a part holds at most {MAX_PART_BYTES} bytes; 'Content-Range: {value}' is {part.length}",
                         field="Content-Range")
    return part


def upload_dir(staging: Path, batch_id: str, name: str) -> Path:
    return staging / batch_id / ".large" / name


def initialize(staging: Path, batch_id: str, name: str) -> None:
    """Start (or start over) the large file ``name``: parts sent before are dropped."""
    folder = upload_dir(staging, batch_id, name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def is_initialized(staging: Path, batch_id: str, name: str) -> bool:
    return upload_dir(staging, batch_id, name).is_dir()


def unfinished(staging: Path, batch_id: str) -> list[str]:
    """The large files of a batch that were initialized and not completed."""
    folder = staging / batch_id / ".large"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def parts(staging: Path, batch_id: str, name: str) -> list[tuple[ByteRange, Path]]:
    """The published parts of a large file, by first byte."""
    folder = upload_dir(staging, batch_id, name)
    found = []
    for path in folder.iterdir() if folder.is_dir() else ():
        match = _PART.match(path.name)  # staged parts (hidden ``.*.partial`` names) do not match
        if match is not None:
            total = None if match[3] == _UNKNOWN else int(match[3])
            found.append((ByteRange(int(match[1]), int(match[2]), total), path))
    return sorted(found, key=lambda item: (item[0].first, item[0].last))


def received(ranges: list[ByteRange]) -> list[tuple[int, int]]:
    """The byte ranges received, adjacent and overlapping ranges merged."""
    merged: list[tuple[int, int]] = []
    for part in sorted(ranges, key=lambda r: r.first):
        if merged and part.first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], part.last))
        else:
            merged.append((part.first, part.last))
    return merged


def range_header(spans: list[tuple[int, int]]) -> str:
    """The ``Range`` header of a status answer: ``bytes=0-1048575,2097152-3145727``."""
    return "bytes=" + ",".join(f"{first}-{last}" for first, last in spans)


def part_target(staging: Path, batch_id: str, name: str, part: ByteRange) -> Path:
    """Where a part is published, once it is known to fit with the parts already received.

    Raises:
        NotFound: the large file was not initialized.
        BadRequest: the part overlaps another one (sending the same range again replaces it), or says another
            total size than the parts before.
    """
    if not is_initialized(staging, batch_id, name):
        raise NotFound(f"large file '{name}' of batch '{batch_id}' was not initialized: send "
                       f"POST .../files/{name}?action=INITIALIZE first", field="filePath")
    for other, _ in parts(staging, batch_id, name):
        if (other.first, other.last) == (part.first, part.last):
            continue
        if other.first <= part.last and part.first <= other.last:
            raise BadRequest(f"bytes {part.first}-{part.last} overlap the part already received for bytes "
                             f"{other.first}-{other.last}", field="Content-Range")
        if None not in (other.total, part.total) and other.total != part.total:
            raise BadRequest(f"this part says the file has {part.total} bytes; an earlier part said {other.total}",
                             field="Content-Range")
    return upload_dir(staging, batch_id, name) / part.part_name()


def complete(staging: Path, batch_id: str, target: Path, name: str) -> int:
    """Assemble the parts of ``name`` into ``target`` (published whole) and drop them; returns its size.

    Raises:
        NotFound: the large file was not initialized.
        BadRequest: no part was received, or some bytes are missing (named) or sent twice.
    """
    if not is_initialized(staging, batch_id, name):
        raise NotFound(f"large file '{name}' of batch '{batch_id}' was not initialized: send "
                       f"POST .../files/{name}?action=INITIALIZE first", field="filePath")
    found = parts(staging, batch_id, name)
    if not found:
        raise BadRequest(f"no part of large file '{name}' was received: send its parts with PATCH and a "
                         "'Content-Range' header before COMPLETE", field="action")
    totals = {part.total for part, _ in found if part.total is not None}
    if len(totals) > 1:
        raise BadRequest(f"the parts of '{name}' disagree on its size: {', '.join(map(str, sorted(totals)))} bytes",
                         field="Content-Range")
    size = totals.pop() if totals else found[-1][0].last + 1
    missing, expected = [], 0
    for part, _ in found:
        if part.first > expected:
            missing.append(f"{expected}-{part.first - 1}")
        elif part.first < expected:
            raise BadRequest(f"bytes {part.first}-{min(part.last, expected - 1)} of '{name}' were received twice",
                             field="Content-Range")
        expected = part.last + 1
    if expected < size:
        missing.append(f"{expected}-{size - 1}")
    if missing:
        raise BadRequest(f"large file '{name}' is missing bytes {', '.join(missing)} of {size}: send them with "
                         "PATCH before COMPLETE", field="action", report={"missingRanges": missing})
    with StagedFile(target) as assembled:
        with assembled.path.open("wb") as out:
            for _, path in found:
                with path.open("rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
        assembled.publish()
    shutil.rmtree(upload_dir(staging, batch_id, name), ignore_errors=True)
    return size
