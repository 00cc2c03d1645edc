"""The membership store is the one owner of membership: no other module of openseg knows its files,
their folders or their columns, or reaches past the package's interface."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import openseg

SOURCE = Path(openseg.__file__).parent
OWNER = SOURCE / "segmentation" / "membership"

#: What only the owner may spell: the membership folder in a path, its sub-folders, the snapshot's bit
#: columns, the pairs' bit column.
FORBIDDEN = {
    "the membership folder": re.compile(r"""["']membership["']\s*\)?\s*/|/\s*["']membership["']"""),
    "a membership sub-folder": re.compile(r"""["'](snapshots|pairs|changes|states)["']"""),
    "a snapshot column": re.compile(r"""\b(in|new|ent|ex)_\d+\b|\b(in|new)_\{"""),
    "the long-form file of old": re.compile(r"""read_parquet\([^)]*membership""", re.IGNORECASE),
}


def _outside() -> list[Path]:
    return [p for p in SOURCE.rglob("*.py") if OWNER not in p.parents]


def test_no_other_module_spells_the_membership_layout() -> None:
    found = []
    for path in _outside():
        text = path.read_text(encoding="utf-8")
        for what, pattern in FORBIDDEN.items():
            for match in pattern.finditer(text):
                line = text.count("\n", 0, match.start()) + 1
                found.append(f"{path.relative_to(SOURCE)}:{line}: {what} ({match.group(0)!r})")
    assert found == []


def test_other_modules_use_only_the_package_interface() -> None:
    found = []
    for path in _outside():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(
                    "openseg.segmentation.membership."):
                found.append(f"{path.relative_to(SOURCE)}:{node.lineno}: imports {node.module}")
    assert found == []


def test_the_patterns_catch_what_they_guard() -> None:
    # The test above is only as good as its patterns: each must flag the layout spelled out.
    samples = {
        "the membership folder": 'home / "membership" / sandbox',
        "a membership sub-folder": 'root / "snapshots" / name',
        "a snapshot column": "SELECT in_0 & 4 FROM m",
        "the long-form file of old": "FROM read_parquet(record.membership_path)",
    }
    assert {what: bool(FORBIDDEN[what].search(text)) for what, text in samples.items()} == dict.fromkeys(samples, True)
