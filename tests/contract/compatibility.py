"""``docs/aep-compatibility.md``: one row per AEP operation and what openseg does with it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

TABLE = Path(__file__).resolve().parents[2] / "docs" / "aep-compatibility.md"
STATUSES = ("implemented", "out of scope", "not yet")
_ROW = re.compile(r"^\| (?P<service>[a-z-]+) \| (?P<method>[A-Z]+) \| `(?P<path>[^`]+)` \| `(?P<openseg_path>[^`]+)` \| "
                  r"(?P<status>[a-z ]+?) \| (?P<note>.*?) ?\|$")
_HEADER = "| service | method | AEP path | openseg path | status | note |"


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str  # as in the spec
    openseg_path: str
    status: str
    note: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.openseg_path}"


def rows(text: str | None = None) -> list[Row]:
    """The rows of the specs' table; a line of it that is not a well-formed row is an error, not skipped."""
    found: list[Row] = []
    for line in (TABLE.read_text() if text is None else text).splitlines():
        if line.startswith("## ") and found:
            break  # the table ends at the next section (the AEP operations outside the specs)
        if not line.startswith("| ") or line == _HEADER:
            continue
        match = _ROW.match(line)
        if match is None:
            raise ValueError(f"{TABLE.name}: not a row of the table: {line!r}")
        if match["status"] not in STATUSES:
            raise ValueError(f"{TABLE.name}: status {match['status']!r} is none of {STATUSES}: {line!r}")
        found.append(Row(**match.groupdict()))
    return found


def implemented() -> list[Row]:
    return [row for row in rows() if row.status == "implemented"]
