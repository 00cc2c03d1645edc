"""``OPENSEG_STREAMER=off``: the worker of ``serve`` / ``worker`` runs no streamer, for a host where
``openseg streamer`` runs as its own process."""

from __future__ import annotations

from pathlib import Path

import pytest

from openseg.bootstrap import build_services
from openseg.config import Settings


def _daemons(home: Path, env: dict[str, str]) -> int:
    services = build_services(Settings.from_env(home=home, env=env))
    try:
        assert services.worker is not None
        return len(services.worker.daemons)
    finally:
        services.db.dispose()


def test_the_worker_runs_the_streamer_unless_it_is_switched_off(tmp_path: Path) -> None:
    assert _daemons(tmp_path / "a", {}) == 1
    assert _daemons(tmp_path / "b", {"OPENSEG_STREAMER": "off"}) == 0
    assert _daemons(tmp_path / "c", {"OPENSEG_STREAMER": "on"}) == 1


def test_a_value_that_is_neither_on_nor_off_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="OPENSEG_STREAMER must be 'on' or 'off', not 'sometimes'"):
        Settings.from_env(home=tmp_path, env={"OPENSEG_STREAMER": "sometimes"})
