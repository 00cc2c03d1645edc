"""Reads never build the profile store (issue #13): lookups and previews answer from the last complete
build, say in ``x-openseg-profile-build`` (and ``openseg:profileBuild`` in openseg's own bodies) whether it
is stale, and leave the build to the worker."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select

from openseg.container import Services
from openseg.profiles.service import BUILD_PROFILES
from openseg.store.models import WorkItem
from tests.api.aep import assert_aep_error
from tests.api.flows import create_dataset, get_batch, json_lines, person, upload_batch
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org

ENTITIES = "/data/core/ups/access/entities"
HEADER = "x-openseg-profile-build"
BUILD_HEADER = re.compile(r"(current|stale); built=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")


def lookup(client: TestClient, org: Org, identity: str, **params: str) -> Response:
    query = "&".join(f"{k}={v}" for k, v in {"schema.name": "_xdm.context.profile", "entityId": identity,
                                              "entityIdNS": "email", **params}.items())
    return client.get(f"{ENTITIES}?{query}", headers=org.headers())


def build_header(response: Response) -> tuple[str, str]:
    """(``current`` or ``stale``, the build's time) from a response's ``x-openseg-profile-build``."""
    match = BUILD_HEADER.fullmatch(response.headers[HEADER])
    assert match is not None, response.headers[HEADER]
    return match[1], match[2]


def ingest_only(client: TestClient, org: Org, services: Services, dataset_id: str,
                records: list[dict[str, Any]]) -> None:
    """Upload a batch and run its ingestion alone: the profile build it queues stays queued."""
    batch_id = upload_batch(client, org.headers(), dataset_id, {"more.json": json_lines(records)})
    assert services.worker is not None and services.worker.run_once()
    assert get_batch(client, org.headers(), batch_id)["status"] == "success"


def builds(services: Services, status: str = "queued") -> list[WorkItem]:
    with services.db.session() as session:
        return list(session.scalars(select(WorkItem).where(WorkItem.kind == BUILD_PROFILES,
                                                           WorkItem.status == status)))


def set_builds(services: Services, old: str, new: str) -> None:
    with services.db.session() as session:
        for item in session.scalars(select(WorkItem).where(WorkItem.kind == BUILD_PROFILES, WorkItem.status == old)):
            item.status = new


def test_a_stale_build_is_served_while_the_next_one_waits(client: TestClient, org: Org, services: Services,
                                                         drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(1)])
    first = lookup(client, org, "p1@example.com")
    assert first.status_code == 200, first.text
    state, built = build_header(first)
    assert state == "current"

    ingest_only(client, org, services, people, [person(2)])
    assert len(builds(services)) == 1
    stale = lookup(client, org, "p1@example.com")
    assert stale.status_code == 200 and stale.json() == first.json()
    assert stale.headers[HEADER] == f"stale; built={built}"
    missing = lookup(client, org, "p2@example.com")  # ingested, but not in the build that answers
    assert_aep_error(missing, 404, detail_contains="no profile has identity email:p2@example.com")
    assert missing.headers[HEADER] == f"stale; built={built}"
    history = client.get("/data/core/ups/access/membership-history?entityId=p1@example.com&entityIdNS=email",
                         headers=org.headers())
    assert history.json()["openseg:profileBuild"] == {"stale": True, "builtAt": built}
    assert history.headers[HEADER] == f"stale; built={built}"
    bulk = client.post(ENTITIES, headers=org.headers(), json={"identities": [
        {"entityId": "p1@example.com", "entityIdNS": {"code": "email"}},
        {"entityId": "p2@example.com", "entityIdNS": {"code": "email"}}]})
    assert list(bulk.json()) == ["email:p1@example.com"] and bulk.headers[HEADER] == f"stale; built={built}"
    assert len(builds(services)) == 1  # the reads neither built nor queued another

    drain()
    fresh = lookup(client, org, "p2@example.com")
    assert fresh.status_code == 200, fresh.text
    state, rebuilt = build_header(fresh)
    assert state == "current" and rebuilt > built


def test_a_stale_read_queues_the_build_when_none_is_waiting(client: TestClient, org: Org, services: Services,
                                                            drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(1)])
    ingest_only(client, org, services, people, [person(2)])
    set_builds(services, "queued", "failed")  # the build that batch queued failed
    assert builds(services) == []
    for _ in range(2):
        assert build_header(lookup(client, org, "p1@example.com"))[0] == "stale"
    assert len(builds(services)) == 1  # one build queued, not one per read
    drain()
    assert build_header(lookup(client, org, "p2@example.com"))[0] == "current"


def test_a_policy_without_a_build_answers_409_and_queues_one(client: TestClient, org: Org, services: Services,
                                                             drain: Callable[[], int]) -> None:
    ingest_only(client, org, services, create_dataset(client, org.headers()), [person(1)])
    (policy,) = client.get("/data/core/ups/config/mergePolicies?default=true", headers=org.headers()).json()["children"]
    set_builds(services, "queued", "failed")

    refused = lookup(client, org, "p1@example.com")
    assert refused.status_code == 409 and HEADER not in refused.headers
    assert refused.json() == {
        "type": "https://ns.adobe.com/aep/errors/UPS-1009-409", "title": "Conflict", "status": 409,
        "detail": f"merge policy '{policy['id']}' has no profile store yet: a build is queued; retry when it completes",
        "report": {"mergePolicyId": policy["id"], "profileBuild": "queued"},
    }
    assert len(builds(services)) == 1
    preview = client.post("/data/core/ups/preview", headers=org.headers(),
                          json={"predicateExpression": 'homeAddress.country = "US"'})
    assert_aep_error(preview, 409, detail_contains=f"merge policy '{policy['id']}' has no profile store yet")
    bulk = client.post(ENTITIES, headers=org.headers(),
                       json={"identities": [{"entityId": "p1@example.com", "entityIdNS": {"code": "email"}}]})
    assert_aep_error(bulk, 409, detail_contains="a build is queued")
    assert len(builds(services)) == 1

    set_builds(services, "queued", "running")  # a worker has taken it
    assert_aep_error(lookup(client, org, "p1@example.com"), 409, detail_contains="a build is running; retry")
    assert builds(services) == []

    set_builds(services, "running", "queued")
    drain()
    assert build_header(lookup(client, org, "p1@example.com"))[0] == "current"


def test_a_changed_merge_policy_is_read_from_its_last_build_until_rebuilt(
        client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    crm, web = create_dataset(client, org.headers(), "crm"), create_dataset(client, org.headers(), "web")
    upload_batch(client, org.headers(), crm, {"c.json": json_lines([
        {"identityMap": {"email": [{"id": "b@x"}]}, "homeAddress": {"country": "US"}}])})
    upload_batch(client, org.headers(), web, {"w.json": json_lines([
        {"identityMap": {"email": [{"id": "b@x"}]}, "homeAddress": {"country": "FR"}}])})
    policy = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "crm first", "identityGraph": {"type": "pdg"},
        "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": [crm, web]}}}).json()
    drain()  # ingestion and the build the new policy queued

    def country(response: Response) -> str:
        assert response.status_code == 200, response.text
        (body,) = response.json().values()
        return str(body["entity"]["homeAddress"]["country"])

    before = lookup(client, org, "b@x", mergePolicyId=policy["id"])
    state, built = build_header(before)
    assert (country(before), state) == ("US", "current")
    patched = client.patch(f"/data/core/ups/config/mergePolicies/{policy['id']}", headers=org.headers(), json=[
        {"op": "replace", "path": "/attributeMerge", "value": {"type": "dataSetPrecedence", "data": {"order": [web, crm]}}}])
    assert patched.status_code == 200, patched.text
    during = lookup(client, org, "b@x", mergePolicyId=policy["id"])
    assert (country(during), during.headers[HEADER]) == ("US", f"stale; built={built}")
    drain()
    after = lookup(client, org, "b@x", mergePolicyId=policy["id"])
    assert (country(after), build_header(after)[0]) == ("FR", "current")


def test_preview_and_estimate_say_which_build_they_counted(client: TestClient, org: Org, services: Services,
                                                           drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [person(i) for i in range(4)])
    ingest_only(client, org, services, people, [person(5), person(7)])
    created = client.post("/data/core/ups/preview", headers=org.headers(),
                          json={"predicateExpression": 'homeAddress.country = "US"'})
    assert created.status_code == 201, created.text
    body = created.json()
    state, built = build_header(created)
    assert state == "stale" and body["openseg:profileBuild"] == {"stale": True, "builtAt": built}
    assert [r["entityId"] for r in body["results"]] == ["email:p1@example.com", "email:p3@example.com"]
    again = client.get(f"/data/core/ups/preview/{body['previewId']}", headers=org.headers())
    assert again.json() == body and again.headers[HEADER] == f"stale; built={built}"
    estimate = client.get(f"/data/core/ups/estimate/{body['previewId']}", headers=org.headers())
    assert estimate.json()["estimatedSize"] == 2 and estimate.json()["openseg:profileBuild"] == body["openseg:profileBuild"]
    assert estimate.headers[HEADER] == f"stale; built={built}"

    drain()
    fresh = client.post("/data/core/ups/preview", headers=org.headers(),
                        json={"predicateExpression": 'homeAddress.country = "US"'})
    assert fresh.json()["page"]["totalCount"] == 4
    assert fresh.json()["openseg:profileBuild"]["stale"] is False and build_header(fresh)[0] == "current"


def test_a_sandbox_without_profile_data_answers_404_without_a_build(client: TestClient, org: Org) -> None:
    missing = lookup(client, org, "nobody@example.com")
    assert_aep_error(missing, 404, detail_contains="no profile has identity email:nobody@example.com")
    assert HEADER not in missing.headers
    bulk = client.post(ENTITIES, headers=org.headers(),
                       json={"identities": [{"entityId": "nobody@example.com", "entityIdNS": {"code": "email"}}]})
    assert (bulk.status_code, bulk.json()) == (200, {}) and HEADER not in bulk.headers


def test_a_new_or_changed_merge_policy_queues_its_build(client: TestClient, org: Org, services: Services,
                                                        drain: Callable[[], int]) -> None:
    load_people(client, org, drain, [person(1)])
    assert builds(services) == []
    created = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "no graph", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"}})
    assert created.status_code == 200, created.text
    assert len(builds(services)) == 1
    drain()
    found = lookup(client, org, "p1@example.com", mergePolicyId=created.json()["id"])
    assert found.status_code == 200, found.text
    assert build_header(found)[0] == "current"
    renamed = client.patch(f"/data/core/ups/config/mergePolicies/{created.json()['id']}", headers=org.headers(),
                           json=[{"op": "replace", "path": "/name", "value": "still no graph"}])
    assert renamed.status_code == 200, renamed.text
    assert len(builds(services)) == 1
