"""The README's edge walk-through works as printed against a running server (worker and streamer inside)."""

from __future__ import annotations

import re
from pathlib import Path

from openseg.container import Services
from tests.e2e.test_readme import run_walkthrough


def test_readme_edge_walkthrough(services: Services, tmp_path: Path) -> None:
    result = run_walkthrough(services, "Walk-through: credentials → dataset → batch → data access",
                             "Walk-through: edge segmentation")
    out = result.stdout.replace(" ", "")
    assert result.returncode == 0, result.stdout + result.stderr
    ann, bob, nobody, collected, refused = [line for line in out.splitlines() if line][-5:]
    assert re.search(r'\{"requestId":"[0-9a-f-]{36}","handle":\[\{"type":"activation:pull","eventIndex":0,'
                        r'"payload":\[\{"type":"profileLookup","segments":\[\{"id":"[0-9a-f-]{36}",'
                        r'"namespace":"ups"\}\]\}\]\}\]\}$', ann), ann
    assert '"payload":[{"type":"profileLookup","segments":[]}]' in bob
    assert nobody.endswith('"handle":[{"type":"activation:pull","eventIndex":0,"payload":[]}]}')
    assert collected == "204"
    assert '"type":"https://ns.adobe.com/aep/errors/EXEG-0306-400"' in refused
    assert '"title":"Noprimaryidentitysetinrequest(event)"' in refused
