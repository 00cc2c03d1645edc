"""The `openseg` command line, as contract.md describes it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from openseg.cli import app


def test_credentials_create_json(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["credentials", "create", "--org", "ACME@AdobeOrg", "--home", str(tmp_path), "--json"],
                           env={"OPENSEG_DATABASE_URL": ""})
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert set(body) == {"apiKey", "accessToken", "imsOrgId", "sandboxName"}
    assert body["imsOrgId"] == "ACME@AdobeOrg" and body["sandboxName"] == "prod"
    again = json.loads(runner.invoke(app, ["credentials", "create", "--org", "ACME@AdobeOrg", "--home", str(tmp_path),
                                           "--sandbox", "dev", "--json"], env={"OPENSEG_DATABASE_URL": ""}).output)
    assert again["sandboxName"] == "dev" and again["apiKey"] != body["apiKey"]
    assert (tmp_path / "openseg.db").exists()
