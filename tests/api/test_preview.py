"""Preview and estimate: exact counts on small sandboxes, sampled estimates with a 95% interval."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.demo import ensure_demo
from openseg.scope import Scope
from openseg.segmentation import preview
from openseg.store import tenancy
from tests.api.aep import assert_aep_error
from tests.api.flows import person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org


def test_exact_preview_and_estimate(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(i) for i in range(7)])
    created = client.post("/data/core/ups/preview", headers=org.headers(), json={
        "predicateExpression": 'homeAddress.country = "US"', "predicateType": "pql/text",
        "predicateModel": "_xdm.context.profile", "graphType": "pdg"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["state"] == "RESULT_READY" and body["openseg:exact"] is True
    # segmentation.yaml requires these on a created preview: openseg runs its query once, at once.
    assert (body["previewQueryId"], body["previewQueryStatus"], body["previewExecutionId"]) == (
        body["previewId"], "RESULT_READY", 1)
    assert [r["entityId"] for r in body["results"]] == [f"email:p{i}@example.com" for i in (1, 3, 5)]
    assert body["results"][0]["entity"]["homeAddress"]["country"] == "US"
    estimate = client.get(f"/data/core/ups/estimate/{body['previewId']}", headers=org.headers()).json()
    assert estimate["estimatedSize"] == 3 and estimate["standardError"] == 0
    assert estimate["confidenceInterval"] == "95%" and estimate["profilesReadSoFar"] == 7
    assert estimate["estimatedNamespaceDistribution"] == [
        {"namespaceId": "email", "estimatedSize": 3, "profilesMatchedSoFar": 3}]
    assert (estimate["numRowsToRead"], estimate["totalRows"], estimate["profilesMatchedSoFar"]) == (7, 7, 3)
    assert estimate["_links"] == {"preview": f"/data/core/ups/preview/{body['previewId']}"}  # a string in the spec
    assert client.get(f"/data/core/ups/preview/{body['previewId']}", headers=org.headers()).json() == body
    deleted = client.delete(f"/data/core/ups/preview/{body['previewId']}", headers=org.headers())
    assert (deleted.status_code, deleted.json()) == (  # segmentation.yaml: 200 with {status, message}
        200, {"status": True, "message": f"preview {body['previewId']} was deleted"})
    assert_aep_error(client.get(f"/data/core/ups/estimate/{body['previewId']}", headers=org.headers()), 404)


def test_bad_predicate_names_the_position(client: TestClient, org: Org) -> None:
    response = client.post("/data/core/ups/preview", headers=org.headers(),
                           json={"predicateExpression": "homeAddress.country =", "predicateType": "pql/text"})
    assert_aep_error(response, 400, detail_contains="predicateExpression.value: line 1, column 22")


def test_large_sandbox_gets_a_sampled_estimate(services: Services) -> None:
    ensure_demo(services, print_to=lambda _: None, profile_count=4000, event_count=4000)
    with services.db.session() as session:
        sandbox = tenancy.find_sandbox(session, "demo@AdobeOrg", "prod")
        assert sandbox is not None
        scope = Scope("demo@AdobeOrg", sandbox.id)
    exact = preview.create_preview(services, scope, {"predicateExpression": 'homeAddress.country = "US"'})
    sampled = preview.create_preview(services, scope, {"predicateExpression": 'homeAddress.country = "US"'},
                                     exact_limit=1000, sample_size=1000)
    truth = preview.estimate_json(exact)
    guess = preview.estimate_json(sampled)
    assert truth["openseg:exact"] is True and guess["openseg:exact"] is False
    assert truth["totalProfiles"] == guess["totalProfiles"] >= 4000
    assert 500 < guess["profilesReadSoFar"] < 1500
    assert guess["standardError"] > 0 and isinstance(guess["standardError"], int)  # an int32 in the spec
    assert guess["profilesMatchedSoFar"] == sum(n["profilesMatchedSoFar"] for n in guess["estimatedNamespaceDistribution"])
    bounds = guess["openseg:confidenceBounds"]
    assert bounds["low"] <= truth["estimatedSize"] <= bounds["high"]
