"""``POST /collection/{inletId}`` and ``/collection/batch/{inletId}``: AEP's acknowledgements and errors."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import create_dataset
from tests.api.test_bad_input import BAD_BODIES
from tests.conftest import Org, make_org
from tests.streaming.inlets import EVENT_SCHEMA, click, create_inlet, envelope

INLET_PROBLEM = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"


@pytest.fixture
def inlet(client: TestClient, org: Org) -> dict[str, Any]:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    return create_inlet(client, org, dataset_id)


def _id(inlet: dict[str, Any]) -> str:
    return str(inlet["auth"]["params"]["inletId"])


def logged(services: Services) -> list[str]:
    """The ``_id`` of every record in the stream log, in order."""
    return [m.entry.record["_id"] for m in services.stream_log().read(0, 1000)]


def test_a_message_is_acknowledged_without_credentials(client: TestClient, services: Services,
                                                       inlet: dict[str, Any]) -> None:
    response = client.post(f"/collection/{_id(inlet)}", json=envelope(click(1)))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"inletId", "xactionId", "receivedTimeMs", "syncValidation"}
    assert body["inletId"] == _id(inlet)
    assert re.fullmatch(r"\d+:\d+:\d+", body["xactionId"])
    assert isinstance(body["receivedTimeMs"], int)
    assert body["syncValidation"] == {"skipped": True}
    assert logged(services) == ["click-1"]
    (message,) = services.stream_log().read(0, 10)
    assert message.entry.xaction_id == body["xactionId"]
    assert message.entry.dataset_id == inlet["auth"]["params"]["datasetId"]


def test_the_connection_id_works_as_the_inlet_too(client: TestClient, services: Services,
                                                   inlet: dict[str, Any]) -> None:
    response = client.post(f"/collection/{inlet['id']}", json=envelope(click(2)))
    assert response.status_code == 200, response.text
    assert response.json()["inletId"] == _id(inlet)
    assert logged(services) == ["click-2"]


def test_sync_validation_passes_a_valid_message(client: TestClient, inlet: dict[str, Any]) -> None:
    response = client.post(f"/collection/{_id(inlet)}?syncValidation=true", json=envelope(click(3)))
    assert response.status_code == 200, response.text
    assert response.json()["syncValidation"] == {"status": "pass"}


def test_sync_validation_names_each_bad_field_and_logs_nothing(client: TestClient, services: Services,
                                                               org: Org, inlet: dict[str, Any]) -> None:
    record = click(4, timestamp=5)
    del record["_id"]
    record["identityMap"] = {"email": [{"id": ""}]}
    response = client.post(f"/collection/{_id(inlet)}?syncValidation=true", json=envelope(record))
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["type"] == INLET_PROBLEM and body["status"] == 400
    assert body["title"] == "Invalid XDM Message Format"
    assert body["report"]["message"] == f"inletId: [{_id(inlet)}] imsOrgId: [{org.org_id}] Message is invalid"
    (validation,) = body["report"]["cause"]["_streamingValidation"]
    causes = validation["causingExceptions"]
    assert [c["pointerToViolation"] for c in causes] == ["#/identityMap/email/0/id", "#/_id", "#/timestamp"]
    assert [c["keyword"] for c in causes] == ["type", "required", "type"]
    assert causes[1]["message"] == "[_id] is required on an ExperienceEvent and must be a non-empty string"
    assert causes[2]["message"] == "[timestamp] must be an RFC 3339 date-time with an offset, not 5"
    assert validation["message"] == "3 schema violations found"
    assert logged(services) == []


def test_sync_validation_reports_at_most_five_violations(client: TestClient, inlet: dict[str, Any]) -> None:
    record = {"identityMap": {f"ns{i}": [{"id": ""}] for i in range(8)}, "timestamp": "soon"}
    response = client.post(f"/collection/{_id(inlet)}?syncValidation=true", json=envelope(record))
    assert response.status_code == 400, response.text
    (validation,) = response.json()["report"]["cause"]["_streamingValidation"]
    assert len(validation["causingExceptions"]) == 5


def test_an_invalid_message_without_sync_validation_is_acknowledged(client: TestClient, services: Services,
                                                                    inlet: dict[str, Any]) -> None:
    response = client.post(f"/collection/{_id(inlet)}", json=envelope(click(5, timestamp="yesterday")))
    assert response.status_code == 200, response.text
    assert response.json()["syncValidation"] == {"skipped": True}
    (message,) = services.stream_log().read(0, 10)
    assert message.entry.problems == (("timestamp", "must be an RFC 3339 date-time with an offset, not 'yesterday'"),)


@pytest.mark.parametrize(("payload", "reason"), [
    ({"header": {}}, "Message has unknown xdm format"),
    ({"body": {"xdmEntity": {}}}, "Message has unknown xdm format"),
    ([1, 2], "Message has unknown xdm format"),
])
def test_a_message_without_an_envelope_is_400(client: TestClient, services: Services, org: Org,
                                             inlet: dict[str, Any], payload: object, reason: str) -> None:
    response = client.post(f"/collection/{_id(inlet)}", json=payload)
    assert response.status_code == 400, response.text
    assert response.json() == {"type": INLET_PROBLEM, "status": 400, "title": "Invalid XDM Message Format",
                               "report": {"message": f"inletId: [{_id(inlet)}] imsOrgId: [{org.org_id}] {reason}"}}
    assert logged(services) == []


def test_a_message_of_another_org_or_unknown_dataset_is_400(client: TestClient, services: Services, org: Org,
                                                           inlet: dict[str, Any]) -> None:
    other = make_org(services)
    wrong_org = client.post(f"/collection/{_id(inlet)}", json=envelope(click(6), org_id=other.org_id))
    assert wrong_org.status_code == 400
    assert wrong_org.json()["report"]["message"].endswith("Message has an absent or wrong ims org in the header")
    other_dataset = create_dataset(client, other.headers(), "events", EVENT_SCHEMA)
    wrong_dataset = client.post(f"/collection/{_id(inlet)}", json=envelope(click(7), dataset_id=other_dataset))
    assert wrong_dataset.status_code == 400
    assert wrong_dataset.json()["report"]["message"].endswith("Message has an unknown dataset in the header")
    right_org = client.post(f"/collection/{_id(inlet)}", json=envelope(click(8), org_id=org.org_id))
    assert right_org.status_code == 200, right_org.text
    assert logged(services) == ["click-8"]


def test_an_unknown_inlet_is_404(client: TestClient) -> None:
    for inlet_id in ("0" * 64, "not-hex!"):
        response = client.post(f"/collection/{inlet_id}", json=envelope(click(9)))
        assert response.status_code == 404, response.text
        assert response.json()["type"] == INLET_PROBLEM
        assert client.post(f"/collection/batch/{inlet_id}", json={"messages": []}).status_code == 404


def test_a_batch_answers_207_per_message_in_order(client: TestClient, services: Services, org: Org,
                                                  inlet: dict[str, Any]) -> None:
    other = make_org(services)
    no_body = {"header": envelope(click(0))["header"]}
    messages = [envelope(click(10)), no_body, envelope(click(11), org_id=other.org_id),
                envelope(click(12, timestamp="late")), envelope(click(13))]
    response = client.post(f"/collection/batch/{_id(inlet)}", json={"messages": messages})
    assert response.status_code == 207, response.text
    body = response.json()
    assert set(body) == {"inletId", "batchId", "receivedTimeMs", "responses"}
    prefix = f"inletId: [{_id(inlet)}] imsOrgId: [{org.org_id}]"
    batch = body["batchId"]
    assert body["responses"] == [
        {"xactionId": f"{batch}:0"},
        {"statusCode": 400, "message": f"{prefix} Message has unknown xdm format"},
        {"statusCode": 400, "message": f"{prefix} Message has an absent or wrong ims org in the header"},
        {"xactionId": f"{batch}:3"},  # validated asynchronously: lands in a failed batch of the dataset
        {"xactionId": f"{batch}:4"},
    ]
    assert logged(services) == ["click-10", "click-12", "click-13"]
    assert [m.entry.xaction_id for m in services.stream_log().read(0, 10)] == [f"{batch}:0", f"{batch}:3",
                                                                               f"{batch}:4"]


def test_sync_validation_on_a_batch_is_400(client: TestClient, services: Services, inlet: dict[str, Any]) -> None:
    response = client.post(f"/collection/batch/{_id(inlet)}?syncValidation=true",
                           json={"messages": [envelope(click(14))]})
    assert response.status_code == 400, response.text
    assert "only available for the single message endpoint" in response.json()["report"]["message"]
    assert logged(services) == []


def test_a_body_over_a_million_bytes_is_413(client: TestClient, services: Services, inlet: dict[str, Any]) -> None:
    big = envelope(click(15, note="x" * 1_000_000))
    single = client.post(f"/collection/{_id(inlet)}", content=json.dumps(big).encode())
    assert single.status_code == 413, single.text
    assert single.json()["status"] == 413
    messages = [envelope(click(16 + i, note="y" * 100_000)) for i in range(10)]
    batch = client.post(f"/collection/batch/{_id(inlet)}", content=json.dumps({"messages": messages}).encode())
    assert batch.status_code == 413, batch.text
    # Just under the limit is taken.
    fits = envelope(click(40, note="z" * 990_000))
    assert len(json.dumps(fits).encode()) < 1_000_000
    assert client.post(f"/collection/{_id(inlet)}", content=json.dumps(fits).encode()).status_code == 200
    assert logged(services) == ["click-40"]


def test_an_authenticated_inlet_needs_its_orgs_credentials(client: TestClient, services: Services,
                                                           org: Org) -> None:
    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id, authenticated=True)
    path = f"/collection/{_id(inlet)}"
    anonymous = client.post(path, json=envelope(click(20)))
    assert anonymous.status_code == 401, anonymous.text
    assert anonymous.json()["type"] == "https://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"
    assert anonymous.json()["title"] == "Authorization"
    assert client.post(f"/collection/batch/{_id(inlet)}", json={"messages": [envelope(click(21))]}).status_code == 401
    other = make_org(services)
    foreign = client.post(path, json=envelope(click(22)), headers=other.headers(None))
    assert foreign.status_code == 403, foreign.text
    own = client.post(path, json=envelope(click(23)), headers=org.headers(None))
    assert own.status_code == 200, own.text
    assert logged(services) == ["click-23"]


def test_sync_validation_is_limited_to_sixty_a_minute_per_inlet(client: TestClient, services: Services,
                                                                inlet: dict[str, Any]) -> None:
    path = f"/collection/{_id(inlet)}"
    for i in range(60):
        assert client.post(f"{path}?syncValidation=true", json=envelope(click(100 + i))).status_code == 200
    refused = client.post(f"{path}?syncValidation=true", json=envelope(click(160)))
    assert refused.status_code == 429, refused.text
    assert refused.json()["type"] == INLET_PROBLEM and refused.json()["status"] == 429
    assert "limited to 60 requests per minute per inlet" in refused.json()["report"]["message"]
    # Asynchronous messages are not limited.
    assert client.post(path, json=envelope(click(161))).status_code == 200
    assert len(logged(services)) == 61


def test_the_rate_limit_slides_with_the_clock() -> None:
    from openseg.streaming.collection import RateLimit

    limit = RateLimit(2, 1000)
    assert limit.take("a", 0) and limit.take("a", 500)
    assert not limit.take("a", 999)
    assert limit.take("b", 999)  # per key
    assert limit.take("a", 1000)  # the call at 0 has left the window
    assert not limit.take("a", 1499)
    assert limit.take("a", 1500)


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_unreadable_bodies_are_400_in_the_inlets_shape(client: TestClient, services: Services,
                                                      inlet: dict[str, Any], case: str) -> None:
    raw, problem = BAD_BODIES[case]
    for path in (f"/collection/{_id(inlet)}", f"/collection/batch/{_id(inlet)}"):
        response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, response.text
        assert response.json()["type"] == INLET_PROBLEM
        assert problem in response.json()["report"]["message"]
    assert logged(services) == []


def test_credentials_scoped_to_another_sandbox_cannot_write_to_an_authenticated_inlet(
        client: TestClient, services: Services, org: Org) -> None:
    from openseg.store.tenancy import issue_credentials

    dataset_id = create_dataset(client, org.headers(), "events", EVENT_SCHEMA)
    inlet = create_inlet(client, org, dataset_id, authenticated=True)
    with services.db.session() as session:
        issued = issue_credentials(session, org.org_id, "dev", sandbox_only=True)
    scoped = Org(org_id=org.org_id, api_key=issued.api_key, token=issued.access_token)
    response = client.post(f"/collection/{_id(inlet)}", json=envelope(click(30)), headers=scoped.headers(None))
    assert response.status_code == 403, response.text
    assert "scoped to sandbox 'dev'" in response.json()["report"]["message"]
    assert logged(services) == []


def test_a_small_message_to_a_known_open_inlet_is_acknowledged_on_the_event_loop(
        client: TestClient, services: Services, org: Org, inlet: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Once a first message has had the inlet, its dataset and the log read (through the collection lane), a small
    message to an inlet without credentials is checked and its commit awaited on the event loop: no thread of the
    lane and no read of the metadata database, and the same answers as the lane's, refusals included (and with a
    trailing slash, which the app drops first). A dataset no longer kept fresh sends the message, body and all,
    back through the lane."""
    import openseg.api.collection as routes

    bad = click(21, timestamp=5)
    del bad["_id"]
    cases = [("?syncValidation=true", envelope(bad)), ("", {"header": {}}),
             ("", envelope(click(22), org_id=make_org(services).org_id))]
    through_lane = [client.post(f"/collection/{_id(inlet)}{query}", json=payload) for query, payload in cases]
    first = client.post(f"/collection/{_id(inlet)}", json=envelope(click(1)))
    assert first.status_code == 200, first.text

    def refused(*_: object, **__: object) -> None:
        raise AssertionError("a small message to a known open inlet went to the lane or the database")

    with monkeypatch.context() as patched:
        patched.setattr(routes, "run_in", refused)
        patched.setattr(services.db, "session", refused)
        second = client.post(f"/collection/{_id(inlet)}", json=envelope(click(2)))
        on_loop = [client.post(f"/collection/{_id(inlet)}{query}", json=payload) for query, payload in cases]
        slashed = client.post(f"/collection/{_id(inlet)}/", json=envelope(click(5)))
    assert slashed.status_code == 200 and slashed.json()["inletId"] == _id(inlet), slashed.text
    assert second.status_code == 200, second.text
    assert second.json()["syncValidation"] == {"skipped": True}
    assert second.json()["inletId"] == _id(inlet) and second.json()["xactionId"] != first.json()["xactionId"]
    assert [(r.status_code, r.json()) for r in on_loop] == [(r.status_code, r.json()) for r in through_lane]
    assert [r.status_code for r in on_loop] == [400, 400, 400]
    assert logged(services) == ["click-1", "click-2", "click-5"]
    (_, message, _) = services.stream_log().read(0, 10)
    assert message.entry.xaction_id == second.json()["xactionId"]

    lane_calls: list[str] = []
    run_in = routes.run_in

    async def counted(*args: Any, **kwargs: Any) -> Any:
        lane_calls.append(args[1])
        return await run_in(*args, **kwargs)

    monkeypatch.setattr(routes, "run_in", counted)
    services.streaming_store()._datasets.clear()  # the dataset's kind is trusted a few seconds, then read again
    assert client.post(f"/collection/{_id(inlet)}", json=envelope(click(3))).status_code == 200
    assert client.post(f"/collection/{_id(inlet)}", json=envelope(click(4))).status_code == 200
    assert lane_calls == ["collection"]
    assert logged(services) == ["click-1", "click-2", "click-5", "click-3", "click-4"]
