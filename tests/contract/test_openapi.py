"""openseg's /openapi.json keeps AEP's operation paths and marks openseg's own routes as extensions."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from tests.contract import compatibility
from tests.contract.aep_specs import operations

#: AEP operations whose spec is not among ``../shared/aep-openapi/``: Flow Service's streaming connections (the
#: inlets of ``/collection``) and the Edge Network Server API, as docs/aep-compatibility.md lists them.
AEP_WITHOUT_SPEC = {("POST", "/data/foundation/flowservice/connections"),
                    ("GET", "/data/foundation/flowservice/connections/{connection_id}"),
                    ("POST", "/ee/v2/interact"), ("POST", "/ee/v2/collect")}


def _shape(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def _documented(client: TestClient) -> dict[tuple[str, str], dict[str, object]]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    return {(method.upper(), path): operation for path, item in response.json()["paths"].items()
            for method, operation in item.items()}


def test_every_route_is_an_aep_operation_or_an_openseg_extension(client: TestClient) -> None:
    aep = {(op.method, _shape(op.openseg_path)) for op in operations()} | {
        (method, _shape(path)) for method, path in AEP_WITHOUT_SPEC}
    documented = _documented(client)
    extensions = {key for key, op in documented.items() if op.get("x-openseg-extension") is True}
    tagged = {key for key, op in documented.items() if "openseg extension" in op.get("tags", [])}  # type: ignore[operator]
    assert extensions == tagged
    assert sorted(key for key in documented if key not in extensions and (key[0], _shape(key[1])) not in aep) == []
    assert sorted(key for key in extensions if (key[0], _shape(key[1])) in aep) == []
    assert {("GET", "/data/core/ups/segment/definitions/{definition_id}/explain"),
            ("POST", "/data/core/ups/segment/definitions/{definition_id}/dryRun"),
            ("GET", "/data/foundation/query/queries/{query_id}/results"), ("GET", "/health")} <= extensions


def test_the_aep_operations_without_a_spec_are_served_and_listed_in_the_compatibility_doc(
        client: TestClient) -> None:
    assert AEP_WITHOUT_SPEC <= set(_documented(client))
    section = compatibility.TABLE.read_text().split("## AEP operations outside these specs")[1].split("\n## ")[0]
    listed = {(m["method"], _shape(m["path"])) for m in re.finditer(r"^\| (?P<method>[A-Z]+) \| `(?P<path>[^`]+)` \|",
                                                                     section, re.MULTILINE)}
    assert listed == {(method, _shape(path)) for method, path in AEP_WITHOUT_SPEC}


def test_every_implemented_aep_operation_is_documented_at_its_aep_path(client: TestClient) -> None:
    documented = {(method, _shape(path)) for method, path in _documented(client)}
    missing = [row.key for row in compatibility.implemented()
               if (row.method, _shape(row.openseg_path)) not in documented]
    assert missing == []
    assert len(compatibility.implemented()) >= 49
