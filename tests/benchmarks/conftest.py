"""A tiny generated data set shared by the benchmark tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.generate import generate

TINY_PROFILES = 2_000
TINY_SEED = 11


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2k profiles (about 20k events), generated once per test session, with JSON Lines."""
    directory = tmp_path_factory.mktemp("bench") / "tiny"
    generate(directory, TINY_PROFILES, TINY_SEED, chunk_size=700, jsonl=True)
    return directory
