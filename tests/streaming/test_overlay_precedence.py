"""The overlay merges as the merge policy does: under ``dataSetPrecedence`` a streamed fragment of a lower
dataset does not override a value of a higher one (built or streamed), and what ``/access/entities`` shows from
the overlay is what it shows after the next build. Under ``timestampOrdered`` the newest record wins."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.profiles.store import FRAGMENTS_FILE, resolve_store
from tests.api.flows import create_dataset, json_lines, upload_batch
from tests.conftest import Org
from tests.streaming.inlets import batches, create_inlet
from tests.streaming.test_overlay import ENTITIES
from tests.streaming.test_streaming_segmentation import PROFILE_SCHEMA, Clock, post, streamer

POLICIES = "/data/core/ups/config/mergePolicies"
DEFINITIONS = "/data/core/ups/segment/definitions"


def define(client: TestClient, org: Org, policy: str, pql: str) -> str:
    response = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": pql, "schema": {"name": "_xdm.context.profile"}, "mergePolicyId": policy,
        "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
    assert response.status_code == 200, response.text
    assert response.json()["evaluationInfo"]["continuous"] == {"enabled": True}
    return str(response.json()["id"])


def fragment(i: int, **attributes: Any) -> dict[str, Any]:
    return {"identityMap": {"email": [{"id": f"p{i}@example.com", "primary": True}]}, **attributes}


def read(client: TestClient, org: Org, policy: str, i: int) -> dict[str, Any]:
    response = client.get(ENTITIES, headers=org.headers(), params={
        "schema.name": "_xdm.context.profile", "entityId": f"p{i}@example.com", "entityIdNS": "email",
        "mergePolicyId": policy})
    assert response.status_code == 200, response.text
    (body,) = response.json().values()
    return dict(body["entity"])


def entity(client: TestClient, org: Org, policy: str, i: int) -> dict[str, Any]:
    return {k: v for k, v in read(client, org, policy, i).items() if k != "segmentMembership"}


def segments(client: TestClient, org: Org, policy: str, i: int) -> set[str]:
    return set((read(client, org, policy, i).get("segmentMembership") or {}).get("ups") or {})


def test_dataset_precedence_holds_for_streamed_fragments_and_the_build_agrees(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    crm, web = create_dataset(client, org.headers(), "crm"), create_dataset(client, org.headers(), "web")
    created = client.post(POLICIES, headers=org.headers(), json={
        "name": "crm first", "identityGraph": {"type": "pdg"}, "schema": {"name": "_xdm.context.profile"},
        "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": [crm, web]}}})
    assert created.status_code == 200, created.text
    policy = created.json()["id"]
    upload_batch(client, org.headers(), crm, {"crm.json": json_lines([
        fragment(1, loyalty={"tier": "gold"}), fragment(2, loyalty={"tier": "gold"})])})
    upload_batch(client, org.headers(), web, {"web.json": json_lines([
        fragment(1, loyalty={"tier": "bronze", "points": 5}, homeAddress={"city": "Web"}),
        fragment(3, loyalty={"tier": "bronze"}),
        fragment(4, loyalty={"points": 5}, extSourceSystemAudit={"lastUpdatedDate": "2026-01-10T00:00:00Z"})])})
    drain()
    assert entity(client, org, policy, 1)["loyalty"] == {"tier": "gold", "points": 5}
    tiers = {define(client, org, policy, f'loyalty.tier = "{tier}"'): tier for tier in ("silver", "platinum")}
    web_inlet, crm_inlet = create_inlet(client, org, web), create_inlet(client, org, crm)
    # p1: the web's tier stays under the CRM's built one; its points replace the web's built ones.
    post(client, web_inlet, fragment(1, loyalty={"tier": "silver", "points": 7}), schema=PROFILE_SCHEMA)
    # p3: a streamed CRM fragment wins over a web fragment streamed after it, and over the built web one.
    post(client, crm_inlet, fragment(3, loyalty={"tier": "platinum"}, homeAddress={"city": "Crm"}), schema=PROFILE_SCHEMA)
    post(client, web_inlet, fragment(3, loyalty={"tier": "silver", "points": 9}, homeAddress={"city": "Web"}),
         schema=PROFILE_SCHEMA)
    # p4: within one dataset the time decides: a fragment last updated before the built one does not win.
    post(client, web_inlet, fragment(4, loyalty={"points": 8, "tier": "silver"},
                                     extSourceSystemAudit={"lastUpdatedDate": "2026-01-01T00:00:00Z"}),
         schema=PROFILE_SCHEMA)
    # p2: a streamed CRM fragment replaces the built CRM value.
    post(client, crm_inlet, fragment(2, loyalty={"tier": "platinum"}), schema=PROFILE_SCHEMA)
    overlaid = {i: entity(client, org, policy, i) for i in (1, 2, 3, 4)}
    assert {i: (e["loyalty"], e.get("homeAddress")) for i, e in overlaid.items()} == {
        1: ({"tier": "gold", "points": 7}, {"city": "Web"}),
        2: ({"tier": "platinum"}, None),
        3: ({"tier": "platinum", "points": 9}, {"city": "Crm"}),
        4: ({"points": 5, "tier": "silver"}, None)}
    # Streaming segmentation merges the same way: p1 is not silver (its tier is the CRM's gold), p3 is platinum.
    consumers = streamer(services, Clock())
    assert consumers.segmenter is not None and consumers.segmenter.run_until_idle() == 5
    assert {i: {tiers[s] for s in segments(client, org, policy, i)} for i in (1, 2, 3, 4)} == {
        1: set(), 2: {"platinum"}, 3: {"platinum"}, 4: {"silver"}}
    assert consumers.run_until_idle() == 5
    drain()  # the build merges the same fragments by the same policy
    assert {i: entity(client, org, policy, i) for i in (1, 2, 3, 4)} == overlaid


def test_a_store_built_without_its_fragments_lays_streamed_ones_over_its_rows_until_rebuilt(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    crm, web = create_dataset(client, org.headers(), "crm"), create_dataset(client, org.headers(), "web")
    created = client.post(POLICIES, headers=org.headers(), json={
        "name": "crm first", "identityGraph": {"type": "pdg"}, "schema": {"name": "_xdm.context.profile"},
        "attributeMerge": {"type": "dataSetPrecedence", "data": {"order": [crm, web]}}})
    assert created.status_code == 200, created.text
    policy = created.json()["id"]
    upload_batch(client, org.headers(), crm, {"crm.json": json_lines([fragment(1, loyalty={"tier": "gold"})])})
    drain()
    # As a build of an older version left it: no fragments.parquet.
    sandbox_id = batches(client, org, crm)[0]["sandboxId"]
    (resolve_store(services.settings.profiles_dir / sandbox_id / policy) / FRAGMENTS_FILE).unlink()
    post(client, create_inlet(client, org, web), fragment(1, loyalty={"points": 3}), schema=PROFILE_SCHEMA)
    # The built row stays (nothing to rank it by: the streamed fragment is laid over it, newest first).
    assert entity(client, org, policy, 1)["loyalty"] == {"tier": "gold", "points": 3}
    assert streamer(services, Clock()).run_until_idle() == 1
    drain()  # a full build, which keeps the fragments again
    assert (resolve_store(services.settings.profiles_dir / sandbox_id / policy) / FRAGMENTS_FILE).is_file()
    assert entity(client, org, policy, 1)["loyalty"] == {"tier": "gold", "points": 3}
