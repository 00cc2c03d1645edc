"""Real-Time Customer Profile over HTTP: stitching, merge policies, lookup, events, erasure."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient

from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, create_dataset, json_lines, upload_batch
from tests.conftest import Org

ENTITIES = "/data/core/ups/access/entities"


def _profile(client: TestClient, org: Org, ns: str, ident: str, **params: str) -> dict:
    query = "&".join(f"{k}={v}" for k, v in {"schema.name": "_xdm.context.profile", "entityId": ident,
                                              "entityIdNS": ns, **params}.items())
    response = client.get(f"{ENTITIES}?{query}", headers=org.headers())
    assert response.status_code == 200, response.text
    (body,) = response.json().values()
    return dict(body)


def _stitch_fixture(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    people = create_dataset(client, org.headers())
    events = create_dataset(client, org.headers(), "events", EVENT)
    upload_batch(client, org.headers(), people, {"a.json": json_lines([
        {"identityMap": {"email": [{"id": "a@x", "primary": True}]}, "person": {"name": {"firstName": "Ann"}}},
        {"identityMap": {"email": [{"id": "a@x"}], "ECID": [{"id": "1"}]}, "loyalty": {"tier": "gold"}},
    ])})
    upload_batch(client, org.headers(), events, {"e.json": json_lines([
        {"_id": "ev1", "timestamp": "2026-01-01T10:00:00Z", "eventType": "commerce.purchases",
         "identityMap": {"ECID": [{"id": "1"}]}, "commerce": {"order": {"priceTotal": 20.0}}},
        {"_id": "ev2", "timestamp": "2026-01-02T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
         "identityMap": {"ECID": [{"id": "1"}]}},
    ])})
    drain()


def test_fragments_stitch_into_one_profile_found_by_either_identity(client: TestClient, org: Org,
                                                                    drain: Callable[[], int]) -> None:
    _stitch_fixture(client, org, drain)
    by_email = _profile(client, org, "email", "a@x")
    by_ecid = _profile(client, org, "ECID", "1")
    assert by_email == by_ecid
    assert by_email["entity"]["person"] == {"name": {"firstName": "Ann"}}
    assert by_email["entity"]["loyalty"] == {"tier": "gold"}
    assert by_email["identityGraph"] == ["ECID:1", "email:a@x"]
    assert by_email["entity"]["identityMap"]["email"][0]["id"] == "a@x"
    assert len(by_email["sources"]) == 1 and by_email["tags"] == []
    events = client.get(f"{ENTITIES}?schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile"
                        "&relatedEntityId=a@x&relatedEntityIdNS=email&orderby=-timestamp&limit=1",
                        headers=org.headers()).json()
    assert [c["entityId"] for c in events["children"]] == ["ev2"]
    assert events["children"][0]["timestamp"] == 1767348000000
    following = client.get(events["_links"]["next"]["href"], headers=org.headers()).json()
    assert [c["entityId"] for c in following["children"]] == ["ev1"]
    assert following["children"][0]["entity"]["commerce"] == {"order": {"priceTotal": 20.0}}
    assert following["_links"]["next"]["href"] == ""
    bulk = client.post(ENTITIES, headers=org.headers(), json={
        "schema": {"name": "_xdm.context.profile"}, "fields": ["person.name.firstName"],
        "identities": [{"entityId": "1", "entityIdNS": {"code": "ECID"}}, {"entityId": "zz", "entityIdNS": {"code": "email"}}]})
    (only,) = bulk.json().values()
    assert only["entity"]["person"] == {"name": {"firstName": "Ann"}} and "loyalty" not in only["entity"]


def _lookup_status(client: TestClient, org: Org, namespace: str, entity_id: str, policy_id: str) -> int:
    return client.get(f"{ENTITIES}?schema.name=_xdm.context.profile&entityId={entity_id}&entityIdNS={namespace}"
                      f"&mergePolicyId={policy_id}", headers=org.headers()).status_code


def test_identity_graph_none_keeps_them_apart(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    _stitch_fixture(client, org, drain)
    policy = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "no graph", "identityGraph": {"type": "none"}, "attributeMerge": {"type": "timestampOrdered"}}).json()
    # A new policy's store is built by the worker (the policy's creation queued it), never by a read.
    assert _lookup_status(client, org, "email", "a@x", policy["id"]) == 409
    drain()
    by_email = _profile(client, org, "email", "a@x", mergePolicyId=policy["id"])
    by_ecid = _profile(client, org, "ECID", "1", mergePolicyId=policy["id"])
    assert by_email["entityId"] != by_ecid["entityId"]


def test_timestamp_ordered_and_dataset_precedence(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    crm = create_dataset(client, org.headers(), "crm")
    web = create_dataset(client, org.headers(), "web")
    old, new = "2026-01-01T00:00:00Z", "2026-06-01T00:00:00Z"
    upload_batch(client, org.headers(), crm, {"c.json": json_lines([
        {"identityMap": {"email": [{"id": "b@x"}]}, "homeAddress": {"country": "US"},
         "extSourceSystemAudit": {"lastUpdatedDate": old}}])})
    upload_batch(client, org.headers(), web, {"w.json": json_lines([
        {"identityMap": {"email": [{"id": "b@x"}]}, "homeAddress": {"country": "FR"},
         "extSourceSystemAudit": {"lastUpdatedDate": new}}])})
    drain()
    assert _profile(client, org, "email", "b@x")["entity"]["homeAddress"] == {"country": "FR"}
    policy = client.post("/data/core/ups/config/mergePolicies", headers=org.headers(), json={
        "name": "crm first", "identityGraph": {"type": "pdg"},
        "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": [crm, web]}}}).json()
    assert _lookup_status(client, org, "email", "b@x", policy["id"]) == 409
    drain()
    assert _profile(client, org, "email", "b@x", mergePolicyId=policy["id"])["entity"]["homeAddress"] == {"country": "US"}


def test_unknown_identity_and_other_sandbox_are_404(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    _stitch_fixture(client, org, drain)
    response = client.get(f"{ENTITIES}?schema.name=_xdm.context.profile&entityId=nobody&entityIdNS=email",
                          headers=org.headers())
    assert_aep_error(response, 404, detail_contains="no profile has identity email:nobody")
    client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(), json={"name": "dev"})
    hidden = client.get(f"{ENTITIES}?schema.name=_xdm.context.profile&entityId=a@x&entityIdNS=email",
                        headers=org.headers("dev"))
    assert_aep_error(hidden, 404, detail_contains="no profile has identity email:a@x")


def test_erase_removes_fragments_and_events(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    _stitch_fixture(client, org, drain)
    erased = client.delete(f"{ENTITIES}?schema.name=_xdm.context.profile&entityId=1&entityIdNS=ECID",
                           headers=org.headers())
    assert erased.status_code == 202
    drain()
    for ns, ident in (("email", "a@x"), ("ECID", "1")):
        gone = client.get(f"{ENTITIES}?schema.name=_xdm.context.profile&entityId={ident}&entityIdNS={ns}",
                          headers=org.headers())
        assert_aep_error(gone, 404)


def test_segment_membership_shows_on_the_profile(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    from tests.api.test_definitions import define
    from tests.api.test_segment_jobs import run_job

    _stitch_fixture(client, org, drain)
    gold = define(client, org, "gold", 'loyalty.tier = "gold"')
    run_job(client, org, drain, gold["id"])
    membership = _profile(client, org, "email", "a@x")["entity"]["segmentMembership"]["ups"]
    assert membership[gold["id"]]["status"] == "realized"
    assert membership[gold["id"]]["lastQualificationTime"].endswith("Z")


def test_identity_graphs_over_fifty_are_reported(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    people = create_dataset(client, org.headers())
    # 60 fragments chained by shared e-mails: one graph of 61 identities, over AEP's 50-identity guardrail.
    chain = [{"identityMap": {"email": [{"id": f"c{i}@x"}, {"id": f"c{i + 1}@x"}]}} for i in range(60)]
    upload_batch(client, org.headers(), people, {"chain.json": json_lines(chain)})
    drain()
    policies = client.get("/data/core/ups/config/mergePolicies", headers=org.headers()).json()["children"]
    policy = client.get(f"/data/core/ups/config/mergePolicies/{policies[0]['id']}", headers=org.headers()).json()
    store = policy["openseg:profileStore"]
    assert store["oversizedIdentityGraphs"] == 1 and store["fragments"] == 60
    (sample,) = store["oversizedIdentityGraphSamples"]
    assert sample["identities"] == 61 and len(sample["splitInto"]) >= 2
    assert store["profiles"] == len(sample["splitInto"])


def test_a_new_batch_refreshes_the_store_incrementally(client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    from tests.api.flows import person

    people = create_dataset(client, org.headers())
    upload_batch(client, org.headers(), people, {"a.json": json_lines([person(i) for i in range(10)])})
    drain()
    # Touches one existing profile (of ten) and adds two: under the 25% share that forces a full rebuild.
    upload_batch(client, org.headers(), people, {"b.json": json_lines([person(i) for i in range(9, 12)])})
    drain()
    (policy,) = client.get("/data/core/ups/config/mergePolicies", headers=org.headers()).json()["children"]
    store = client.get(f"/data/core/ups/config/mergePolicies/{policy['id']}", headers=org.headers()).json()
    assert store["openseg:profileStore"]["lastRefresh"] == "incremental"
    assert store["openseg:profileStore"]["profiles"] == 12 and store["openseg:profileStore"]["fragments"] == 13
    assert _profile(client, org, "email", "p11@example.com")["entity"]["loyalty"] == {"points": 110}
