"""docs/aep-compatibility.md cannot go stale: it has exactly the specs' operations, openseg paths derived from
the specs' server paths, and an "implemented" status exactly where the app routes the operation."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from tests.conftest import Org
from tests.contract import compatibility
from tests.contract.aep_specs import operations


def _shape(path: str) -> str:
    """A path template with its parameter names erased: ``/a/{SEGMENT_ID}`` and ``/a/{definition_id}`` agree."""
    return re.sub(r"\{[^}]+\}", "{}", path)


def routed(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path shape) of every route of the app, as declared (an implicit HEAD of a GET is not one)."""
    found = set()
    for context in iter_route_contexts(app.routes):
        assert context.path is not None
        found |= {(method, _shape(context.path)) for method in context.methods or ()}
    return found


#: Out-of-scope operations openseg routes only to refuse them: a 404 that says where to go instead (the
#: table's note says so too), rather than the bare 404 of a path it does not know.
REFUSED = {"GET /data/foundation/catalog/dataSets/{id}/credentials"}


def test_every_spec_operation_has_exactly_one_row() -> None:
    in_table = Counter((row.service, row.method, row.path) for row in compatibility.rows())
    in_specs = Counter((op.service, op.method, op.path) for op in operations())
    assert [key for key, n in in_table.items() if n > 1] == [], "operations with more than one row"
    assert sorted(in_specs - in_table) == [], "spec operations missing from the table"
    assert sorted(in_table - in_specs) == [], "rows of no spec operation (stale)"
    assert len(in_specs) == 120  # 118 of the six services, and streaming ingestion's 2


def test_openseg_paths_are_the_spec_paths_under_their_server_path() -> None:
    derived = {(op.service, op.method, op.path): op.openseg_path for op in operations()}
    wrong = [(row.service, row.method, row.path, row.openseg_path) for row in compatibility.rows()
             if derived[(row.service, row.method, row.path)] != row.openseg_path]
    assert wrong == []
    assert derived[("profile", "GET", "/ups/config/mergePolicies")] == "/data/core/ups/config/mergePolicies"
    assert derived[("catalog", "GET", "/")] == "/data/foundation/catalog"


def test_out_of_scope_rows_give_their_reason() -> None:
    assert [row.key for row in compatibility.rows() if row.status == "out of scope" and len(row.note) < 10] == []


def test_a_malformed_row_is_an_error_not_a_skipped_line() -> None:
    with pytest.raises(ValueError, match="status 'done'"):
        compatibility.rows("| query-service | GET | `/queries` | `/data/foundation/query/queries` | done |  |")
    with pytest.raises(ValueError, match="not a row"):
        compatibility.rows("| query-service | GET | /queries | x |")


def test_implemented_rows_are_routed_and_routed_operations_are_implemented(app: FastAPI) -> None:
    served = routed(app)
    rows = compatibility.rows()
    unrouted = [row.key for row in rows if row.status == "implemented" and (row.method, _shape(row.openseg_path))
                not in served]
    assert unrouted == [], "rows marked implemented that the app does not route"
    unmarked = [f"{row.key} ({row.status})" for row in rows if row.status != "implemented" and row.key not in REFUSED
                and (row.method, _shape(row.openseg_path)) in served]
    assert unmarked == [], "operations the app routes that the table does not mark implemented"
    refused = [row for row in rows if row.key in REFUSED]
    assert [(row.status, (row.method, _shape(row.openseg_path)) in served) for row in refused] == [
        ("out of scope", True)] * len(REFUSED)


def test_a_refused_operation_answers_404_saying_where_to_go_instead(client: TestClient, org: Org) -> None:
    response = client.get("/data/foundation/catalog/dataSets/5c8c3c555033b814b69f947f/credentials",
                          headers=org.headers())
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and body["report"] == {"resource": "credentials", "id": "5c8c3c555033b814b69f947f"}
    assert "read its files through Data Access" in body["detail"] and "/data/foundation/import/batches" in body["detail"]
