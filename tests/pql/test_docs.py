"""docs/pql.md documents exactly the registry's functions, each with an example that parses and checks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from openseg.pql import check, functions, parse

DOC = (Path(__file__).resolve().parents[2] / "docs" / "pql.md").read_text()
HEADER = "| function | example | DuckDB | Spark | Python | streaming |"
ROW = re.compile(r"^\| `([^`]+)` \| `(.+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \| ([^|]+) \|$", re.MULTILINE)
ROWS = ROW.findall(DOC)


def test_every_table_has_the_support_columns() -> None:
    assert DOC.count(HEADER) >= 1
    table_lines = [line for line in DOC.splitlines() if line.startswith("| `")]
    assert len(table_lines) == len(ROWS), "a function row does not follow the table format"


def test_every_registry_function_is_documented() -> None:
    documented = [name for name, *_ in ROWS]
    missing = sorted(set(functions.FUNCTIONS) - set(documented))
    assert not missing, f"functions missing from docs/pql.md: {missing}"


def test_the_doc_names_no_function_outside_the_registry() -> None:
    unknown = sorted({name for name, *_ in ROWS} - set(functions.FUNCTIONS))
    assert not unknown, f"docs/pql.md documents functions that do not exist: {unknown}"


def test_each_function_is_documented_once() -> None:
    names = [name for name, *_ in ROWS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("name", "example"), [(row[0], row[1]) for row in ROWS], ids=[row[0] for row in ROWS])
def test_documented_examples_parse_and_check(name: str, example: str) -> None:
    tree = parse(example)
    check(tree)
    assert any(name.lower() in token.lower() for token in re.findall(r"[A-Za-z]+", example))


def test_support_cells_are_words_a_reader_understands() -> None:
    for row in ROWS:
        for cell in row[2:]:
            # "yes", "no", or either followed by a short note, e.g. "no (NotSupportedOnEngine)".
            assert cell.split()[0] in {"yes", "no", "partial"}, f"{row[0]}: {cell}"


def test_every_reference_page_example_in_the_doc_is_in_the_differential_corpus() -> None:
    from tests.pql.datagen import load_corpus

    corpus = {entry.text for entry in load_corpus()}
    section = DOC[DOC.index("## Adobe's reference pages"):DOC.index("## Differences from AEP")]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith(("| page", "| -"))]
    examples = [ex for row in rows for ex in re.findall(r"`([^`]+)`", row.rstrip(" |").split(" | ")[-1])]
    assert len(rows) >= 17 and len(examples) >= len(rows)
    assert [ex for ex in examples if ex not in corpus] == []
