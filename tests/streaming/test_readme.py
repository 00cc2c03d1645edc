"""The README's streaming walk-through works as printed against a running server (worker and streamer inside)."""

from __future__ import annotations

from pathlib import Path

from openseg.container import Services
from tests.e2e.test_readme import run_walkthrough


def test_readme_streaming_walkthrough(services: Services, tmp_path: Path) -> None:
    result = run_walkthrough(services, "Walk-through: credentials → dataset → batch → data access",
                             "Walk-through: streaming ingestion")
    out = result.stdout.replace(" ", "")
    assert result.returncode == 0, result.stdout + result.stderr
    assert '"syncValidation":{"status":"pass"}' in out
    assert '"responses":[{"xactionId":' in out and 'Messagehasunknownxdmformat"}]' in out
    assert '"cat@example.com"' in out and '"country":"US"' in out
    assert "continuous:{'enabled':True}" in out
    assert 'CatinRecentUSviewers:{"status":"realized","lastQualificationTime":' in out
    assert "optedin:TrueAEPstreamsit:False" in out  # openseg:streamingOptIn beside AEP's evaluationInfo
