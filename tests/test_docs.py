"""README stays true: the configuration table and the commands match the code."""

from __future__ import annotations

from pathlib import Path

from openseg.config import ENVIRONMENT

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_every_setting_is_in_the_readme_table() -> None:
    for name, default, meaning in ENVIRONMENT:
        assert f"| `{name}` | `{default}` | {meaning} |" in README, name


def test_readme_shows_the_two_commands() -> None:
    assert "make run" in README and "make test" in README
