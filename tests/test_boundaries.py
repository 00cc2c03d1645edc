"""The package boundaries hold (pyproject's import-linter contracts), and their known debt only shrinks.

Each contract's ``ignore_imports`` lists the violations that existed when the contracts were set up
(issue #13). ``lint-imports`` fails on a new violation and on an entry that matches no import; the
tests below also fail when a list grows, and when an entry is no longer needed because a fix elsewhere
cut every path from its import to a forbidden module, so the list always says exactly what is left.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CONTRACTS: dict[str, dict[str, Any]] = {
    contract["id"]: contract
    for contract in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
}

#: How many imports each contract still ignores. A fix deletes its entries and lowers the number here
#: to match; a new violation is fixed, never ignored, so no number ever goes up.
KNOWN_DEBT = {
    "pql-standalone": 0,
    "pql-no-infrastructure": 0,
    "segmentation-no-infrastructure": 0,
    "profiles-no-infrastructure": 0,
    "exports-no-infrastructure": 0,
    "scheduling-no-infrastructure": 0,
    "streaming-no-infrastructure": 0,
    "streaming-through-ports": 0,
    "engines-no-domain": 0,
    "container-not-worker": 0,
}


def test_contracts_are_kept() -> None:
    result = subprocess.run([str(BIN / "lint-imports"), "--no-cache", "--no-logo"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_known_debt_only_shrinks() -> None:
    counts = {contract_id: len(contract.get("ignore_imports", [])) for contract_id, contract in CONTRACTS.items()}
    changed = {contract_id: (counts.get(contract_id), KNOWN_DEBT.get(contract_id))
               for contract_id in counts.keys() | KNOWN_DEBT.keys() if counts.get(contract_id) != KNOWN_DEBT.get(contract_id)}
    grown = {contract_id: pair for contract_id, pair in changed.items() if (pair[0] or 0) > (pair[1] or 0)}
    assert not grown, f"ignored imports (now, recorded) grew in {grown}: fix the new violation instead of ignoring it"
    assert not changed, f"ignored imports (now, recorded) shrank in {changed}: lower KNOWN_DEBT to match"


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("openseg", include_external_packages=True, cache_dir=None)


def _with_descendants(graph: grimp.ImportGraph, names: list[str]) -> set[str]:
    modules: set[str] = set()
    for name in names:
        if name in graph.modules:  # a third-party package is one (squashed) module of the graph
            modules |= {name} if graph.is_module_squashed(name) else {name} | graph.find_descendants(name)
    return modules


@pytest.mark.parametrize("contract_id", sorted(CONTRACTS))
def test_every_ignored_import_is_still_needed(graph: grimp.ImportGraph, contract_id: str) -> None:
    """An entry stays only while its import exists and still leads to a forbidden module."""
    contract = CONTRACTS[contract_id]
    entries = [tuple(part.strip() for part in entry.split("->")) for entry in contract.get("ignore_imports", [])]
    missing = [f"{a} -> {b}" for a, b in entries if not graph.direct_import_exists(importer=a, imported=b)]
    assert not missing, f"{contract_id}: these ignored imports no longer exist; delete them: {missing}"
    remaining = copy.deepcopy(graph)
    for importer, imported in entries:
        remaining.remove_import(importer=importer, imported=imported)
    forbidden = _with_descendants(remaining, contract["forbidden_modules"])
    unneeded = [f"{a} -> {b}" for a, b in entries
                if b not in forbidden and not remaining.find_upstream_modules(b) & forbidden]
    assert not unneeded, (f"{contract_id}: these ignored imports no longer reach a forbidden module; "
                          f"delete them: {unneeded}")
