"""The 50-identity guardrail holds for streamed links: a streamed record that would link two built profiles into a
graph of more than 50 identities does not link them in the overlay, exactly as the next build replays it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import person
from tests.api.test_segment_jobs import load_people
from tests.conftest import Org
from tests.streaming.inlets import create_inlet
from tests.streaming.test_overlay import profile
from tests.streaming.test_streaming_segmentation import PROFILE_SCHEMA, Clock, post, streamer


def thirty(letter: str) -> dict[str, Any]:
    """A person with an e-mail and 29 ECIDs: 30 identities, one graph."""
    return person(1, identityMap={"email": [{"id": f"{letter}@example.com", "primary": True}],
                                  "ECID": [{"id": f"{letter.upper()}{i:02d}"} for i in range(29)]},
                  loyalty={"points": 1 if letter == "a" else 2})


def shown(client: TestClient, org: Org, email: str) -> tuple[str, list[str], dict[str, Any]]:
    found = profile(client, org, "email", email)
    return found["entityId"], found["identityGraph"], found["entity"]["loyalty"]


def test_a_streamed_link_over_fifty_identities_is_refused_as_the_build_refuses_it(
        client: TestClient, services: Services, org: Org, drain: Callable[[], int]) -> None:
    people = load_people(client, org, drain, [thirty("a"), thirty("b")])
    a_ids = sorted([f"ECID:A{i:02d}" for i in range(29)] + ["email:a@example.com"])
    b_ids = sorted([f"ECID:B{i:02d}" for i in range(29)] + ["email:b@example.com"])
    assert shown(client, org, "a@example.com") == ("ecid:A00", a_ids, {"points": 1})
    inlet = create_inlet(client, org, people)
    # Anchored on a@ (its primary): linking b@'s graph would make 60 identities, over the guardrail.
    post(client, inlet, {"identityMap": {"email": [{"id": "a@example.com", "primary": True}, {"id": "b@example.com"}]},
                         "loyalty": {"tier": "gold"}}, schema=PROFILE_SCHEMA)
    # A new identity still joins (31 identities), in the record's anchor graph.
    post(client, inlet, {"identityMap": {"email": [{"id": "b@example.com", "primary": True}, {"id": "c@example.com"}]},
                         "loyalty": {"tier": "silver"}}, schema=PROFILE_SCHEMA)
    before = {email: shown(client, org, email) for email in ("a@example.com", "b@example.com", "c@example.com")}
    assert before == {
        "a@example.com": ("ecid:A00", a_ids, {"points": 1, "tier": "gold"}),
        "b@example.com": ("ecid:B00", sorted([*b_ids, "email:c@example.com"]), {"points": 2, "tier": "silver"}),
        "c@example.com": ("ecid:B00", sorted([*b_ids, "email:c@example.com"]), {"points": 2, "tier": "silver"})}
    assert streamer(services, Clock()).run_until_idle() == 2
    drain()  # the build replays the oversized graph's records and refuses the same link
    assert {email: shown(client, org, email) for email in before} == before
