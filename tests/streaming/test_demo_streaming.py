"""``openseg serve --demo`` streams a few product views at each start: the server's streamer enters them in
the demo's streaming segment, without a job."""

from __future__ import annotations

from pathlib import Path

from openseg.bootstrap import streamer
from openseg.demo import STREAMING_SEGMENT, ensure_demo
from openseg.store.models import StreamingConnection
from tests.conftest import own_home

DEFINITIONS = "/data/core/ups/segment/definitions"


def test_the_demo_streams_views_that_enter_its_streaming_segment(tmp_path: Path) -> None:
    with own_home(tmp_path) as (services, _, client):
        printed: list[str] = []
        issued = ensure_demo(services, print_to=printed.append, profile_count=200, event_count=600)
        headers = {"Authorization": f"Bearer {issued['accessToken']}", "x-api-key": issued["apiKey"],
                   "x-gw-ims-org-id": issued["imsOrgId"], "x-sandbox-name": "prod"}
        listed = client.get(DEFINITIONS, headers=headers, params={"limit": 50}).json()["segments"]
        (segment,) = [d for d in listed if d["name"] == STREAMING_SEGMENT]
        assert segment["evaluationInfo"]["continuous"]["enabled"] is True
        (line,) = [p for p in printed if p.startswith("Streamed 5 product views")]
        emails = line.split("(")[1].split(")")[0].split(", ")
        assert streamer(services).run_until_idle() == 5  # what the server's streamer does at once
        for email in emails:
            found = client.get("/data/core/ups/access/entities", headers=headers, params={
                "schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "email"})
            assert found.status_code == 200, found.text
            (body,) = found.json().values()
            assert body["entity"]["segmentMembership"]["ups"][segment["id"]]["status"] in ("realized", "existing")
        members = client.get(f"{DEFINITIONS}/{segment['id']}/members", headers=headers).json()["members"]
        assert len(members) >= 5  # keyed by each profile's smallest identity (an ECID here)
        # The next start streams again, through the same connection.
        ensure_demo(services, print_to=printed.append, profile_count=200, event_count=600)
        assert streamer(services).run_until_idle() == 5
        with services.db.session() as session:
            assert session.query(StreamingConnection).count() == 1
