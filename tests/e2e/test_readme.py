"""The README's curl walk-through works as printed against a running server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from openseg.container import Services
from tests.e2e.server import running_server

ROOT = Path(__file__).resolve().parents[2]


def readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def bash_blocks(section: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def run_walkthrough(services: Services, *titles: str) -> subprocess.CompletedProcess[str]:
    """The bash blocks of the README sections ``titles``, in order, as one shell script against a server."""
    blocks = []
    for title in titles:
        found = bash_blocks(readme_section(title))
        assert found, f"README section {title!r} has no bash blocks"
        blocks += found
    # Each run is a new org: on PostgreSQL the metadata store outlives one test, and the walk-throughs create
    # the same names (a definition "US residents") in the org they name.
    script = "set -euo pipefail\n" + "\n".join(blocks).replace("ACME@AdobeOrg", f"ACME{uuid.uuid4().hex[:8].upper()}@AdobeOrg")
    bin_dir = str(Path(sys.executable).parent)
    with running_server(services) as base:
        env = {**os.environ, "OPENSEG": base, "OPENSEG_HOME": str(services.settings.home),
               "OPENSEG_DATABASE_URL": services.settings.database_url, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
        return subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=300)


def test_readme_ingestion_walkthrough(services: Services, tmp_path: Path) -> None:
    result = run_walkthrough(services, "Walk-through: credentials → dataset → batch → data access")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"batch [0-9a-f]{32}: success", result.stdout), result.stdout
    assert '"name":"part-00000.parquet"' in result.stdout.replace(" ", "")
    assert Path("/tmp/people.parquet").read_bytes()[:4] == b"PAR1"


def test_readme_segmentation_and_export_walkthrough(services: Services, tmp_path: Path) -> None:
    """The second walk-through continues the first one's shell, as the README says."""
    result = run_walkthrough(services, "Walk-through: credentials → dataset → batch → data access",
                             "Walk-through: the seed's segmentation and export flow")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "line 1, column 23" in out  # the broken definition's 400 names the position
    assert ('{"nodeType":"fnApply","fnName":"=","params":[{"nodeType":"fieldLookup","fieldName":"country","object":'
            '{"nodeType":"fieldLookup","fieldName":"homeAddress","object":{"nodeType":"parameterReference",'
            '"position":1}}},{"nodeType":"literal","literalType":"String","value":"US"}]}\n') in out
    assert re.search(r"SUCCEEDED \{'[0-9a-f-]{36}': 1\}", out), out
    assert '"segmentMembership"' in out and '"realized"' in out
    assert re.search(r"export \d+: SUCCEEDED, batch [0-9a-f]{32}", out), out
    assert '"rows":[["US",1]]' in out.replace(" ", "")
    assert out.count("204\n") == 2 and '"schedule": "0 15 10 * * ?"' in out and '"state": "active"' in out


def test_readme_explain_and_dry_run_walkthrough(services: Services, tmp_path: Path) -> None:
    """The explain and dry-run walk-through continues the two before it, in the same shell."""
    result = run_walkthrough(services, "Walk-through: credentials → dataset → batch → data access",
                             "Walk-through: the seed's segmentation and export flow",
                             "Walk-through: why a profile is in a segment, and what a change would do")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert '"profileId": "email:ann@example.com"' in out and '"qualifies": true' in out
    assert '"status": "realized"' in out and '"agreesWithMembership": true' in out
    assert "qualifies: no; last job: not a member (agrees)\n" in out
    assert '✗ homeAddress.country = "US"  — home address country is "US" [found "FR"]\n' in out
    assert '"wouldEnter": 1,\n    "wouldExit": 0,\n    "wouldStay": 1,' in out
    assert '"enter": [\n            "email:bob@example.com"\n        ]' in out
    assert "{'realized': 1, 'existing': 1, 'exited': 0}}" in out
