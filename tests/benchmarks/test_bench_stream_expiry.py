"""P5c at a small size, on the real clock: memberships whose windows pass within the same few seconds all exit
within 5 s of their due time, with the streamer running as ``openseg serve`` runs it and nothing streamed
(``python -m benchmarks.stream_expiry`` runs it at 100,000)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.stream_expiry import measure


def test_memberships_expiring_together_all_exit_within_five_seconds(tmp_path: Path) -> None:
    result = measure(tmp_path / "home", 200, lead=8.0, spread=3.0)
    assert (result.members, result.exited) == (200, 200), result.line()
    assert result.lags[0] >= 0 and result.lags[-1] <= 5.0, result.line()
