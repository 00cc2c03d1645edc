"""The authentication and tenancy matrix (issue #19, deliverable 4): every route of the app, its path
parameters filled with the ids of real resources of a victim tenant, called by every kind of wrong caller.

Routes come from the app itself, so a route added tomorrow is called too, and the test fails until it
knows how to fill the new route's path parameters and body. Only ``/health``, the docs and the UI shell
answer without credentials; no call of another org or sandbox reads, lists, changes or deletes the
victim's resources (the victim's every GET answers the same before and after, and no successful answer
holds one of its ids).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.store.tenancy import issue_credentials, token_sandbox
from tests.api.aep import assert_aep_error, assert_gateway_error
from tests.api.flows import json_lines, person, upload_batch
from tests.api.test_bad_input import NOT_JSON
from tests.api.test_wrong_types import valid_bodies
from tests.conftest import Org, make_org

#: The routes that answer without credentials: health, the API docs and the UI shell (its data comes from
#: API calls made with the credentials the user types in).
PUBLIC = {
    ("GET", "/health"), ("GET", "/openapi.json"), ("GET", "/docs"), ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"), ("GET", "/ui"), ("GET", "/ui/{name}"),
    # Streaming inlets, as in AEP: an unauthenticated inlet takes messages from anyone who knows its id
    # (256 random bits); authenticated inlets are tested in tests/streaming/test_collection.py.
    ("POST", "/collection/{inlet_id}"), ("POST", "/collection/batch/{inlet_id}"),
}
#: What a public route answers when it is not 200: a batch of streamed messages is AEP's 207.
PUBLIC_STATUS = {("POST", "/collection/batch/{inlet_id}"): 207}
#: Org-level routes (``caller``, not ``tenant``): sandbox management answers any credentials of the org.
ORG_LEVEL = re.compile(r"^/data/foundation/sandbox-management/")

#: Path parameter -> the victim's resource that fills it (``job_id`` depends on the path).
PARAMETERS = {
    "dataset_id": "dataset", "batch_id": "batch", "file_id": "file", "file_name": "file_name",
    "policy_id": "policy", "definition_id": "segment", "schedule_id": "schedule", "query_id": "query",
    "preview_id": "preview", "field": "batch_field", "connection_id": "connection", "inlet_id": "inlet",
    "datastream_id": "datastream",
}
#: Path parameters whose resource depends on the path's prefix.
PREFIXED_PARAMETERS = {
    "job_id": {"/data/core/ups/export/": "export_job", "/data/core/ups/segment/": "segment_job"},
    "name": {"/data/foundation/sandbox-management/": "sandbox", "/ui/": "ui_asset"},
}

PROFILE = {"entityId": "p1@example.com", "entityIdNS": "email"}
#: Query strings a route needs to reach its resource (a profile, a file's bytes, a batch action).
QUERY = {
    ("GET", "/data/core/ups/access/entities"): {"schema.name": "_xdm.context.profile", **PROFILE},
    ("DELETE", "/data/core/ups/access/entities"): PROFILE,
    ("GET", "/data/core/ups/access/membership-history"): PROFILE,
    ("GET", "/data/core/ups/segment/definitions/{definition_id}/explain"): PROFILE,
    ("POST", "/data/foundation/import/batches/{batch_id}"): {"action": "COMPLETE"},
    ("GET", "/data/foundation/export/files/{file_id}"): {"path": "{file_name}"},  # the file's bytes
    ("GET", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/preview"): {"format": "json"},
    ("POST", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"):
        {"action": "INITIALIZE"},
    # The Edge Network names its datastream in the query string.
    ("POST", "/ee/v2/interact"): {"dataStreamId": "{datastream_id}"},
    ("POST", "/ee/v2/collect"): {"dataStreamId": "{datastream_id}"},
}
#: Requests whose query string names the victim's profile: like an id in the path, they must not reach it.
PROFILE_ROUTES = {key for key, params in QUERY.items() if params.get("entityId") == PROFILE["entityId"]}
#: Calls that may name another tenant's resources and answer: the bulk gets (207, an entry per id asked), where
#: another tenant's id comes back only as a not-found entry (see ``Victim.leaks``).
ANSWERS_WHAT_IT_FINDS = {("POST", "/data/core/ups/segment/definitions/bulk-get"),
                         ("POST", "/data/core/ups/segment/jobs/bulk-get"),
                         ("POST", "/data/core/ups/config/mergePolicies/bulk-get")}
#: Bytes for the one upload route.
RAW_BODIES = {("PUT", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"): b"{}",
              ("PATCH", "/data/foundation/import/batches/{batch_id}/datasets/{dataset_id}/files/{file_name}"): b"{}"}
#: GET routes that answer 404 to everyone, the victim too (openseg has no dataset credentials to give).
NEVER_FOUND = {("GET", "/data/foundation/catalog/dataSets/{dataset_id}/credentials")}
_MESSAGE = {"header": {"schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile"}},
            "body": {"xdmEntity": {"identityMap": {"email": [{"id": "m@example.com"}]}}}}
RAW_BODIES[("POST", "/collection/{inlet_id}")] = json.dumps(_MESSAGE).encode()
RAW_BODIES[("POST", "/collection/batch/{inlet_id}")] = json.dumps({"messages": [_MESSAGE]}).encode()


def served_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves, from ``app.routes`` (included routers expanded)."""
    routes = []
    for context in iter_route_contexts(app.routes):
        assert context.path is not None
        routes.extend((method, context.path) for method in sorted((context.methods or set()) - {"HEAD"}))
    return routes


def _regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{([a-z_]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$")


@dataclass
class Victim:
    """The tenant under attack: org ``org``, sandbox ``prod``, one of each resource, and a body per route."""

    org: Org
    ids: dict[str, str]
    bodies: dict[tuple[str, str], Any]
    #: Text that only the victim's resources hold: its ids and its profiles' names.
    markers: set[str] = field(default_factory=set)

    def fill(self, method: str, template: str) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            key = PARAMETERS.get(name)
            if name in PREFIXED_PARAMETERS:
                key = next((k for prefix, k in PREFIXED_PARAMETERS[name].items() if template.startswith(prefix)),
                           None)
            if key is None:
                pytest.fail(f"the tenancy matrix does not know how to fill {{{name}}} of {method} {template}: "
                            "create that resource in victim() and name it in PARAMETERS")
            return self.ids[key]

        return re.sub(r"\{([a-z_]+)\}", value, template)

    def request(self, method: str, template: str) -> dict[str, Any]:
        """The keyword arguments of the victim's own call of this route (body and query string)."""
        params = {k: self.fill(method, v) for k, v in QUERY.get((method, template), {}).items()}
        kwargs: dict[str, Any] = {"params": params or None}
        if (method, template) in RAW_BODIES:
            kwargs["content"] = RAW_BODIES[(method, template)]
        elif method in ("POST", "PUT", "PATCH") and (method, template) not in NOT_JSON:
            if (method, template) not in self.bodies:
                pytest.fail(f"the tenancy matrix has no body for {method} {template}: add one to valid_bodies()")
            kwargs["json"] = self.bodies[(method, template)]
        return kwargs

    def leaks(self, response: Any) -> list[str]:
        """The victim's ids and names in an answer: anywhere in its text when long enough to be unique (ids of
        32 hex digits, profile names), and as the value of an id field (job ids are small integers).

        A bulk get's answer (``{"results": {id: entry}}``) names each id asked, the victim's too: an id may appear
        only as the key of its not-found entry (``{"errors": {"404": [...]}}``), which says nothing of it."""
        text = response.text
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        if isinstance(body, dict) and isinstance(body.get("results"), dict) and response.status_code == 207:
            body = {key: entry for key, entry in body["results"].items() if not _not_found(entry)}
            text = json.dumps(body)
        found = {m for m in self.markers if len(m) >= 5 and m in text}
        if body is not None:
            found |= {v for key, v in _scalars(body) if key.lower().endswith("id") and v in self.markers}
        return sorted(found)

    def names_victim(self, method: str, template: str) -> bool:
        """Whether the call names one of the victim's resources (path, body or the profile it looks up)."""
        ids = {self.ids[k] for k in RESOURCES}
        sent = set(self.fill(method, template).split("/"))
        sent |= {v for _, v in _scalars(self.request(method, template).get("json"))}
        sent |= set((self.request(method, template).get("params") or {}).values())  # the Edge's dataStreamId
        return (method, template) in PROFILE_ROUTES or bool(ids & sent)


def _not_found(entry: Any) -> bool:
    """A bulk get's entry for an id it did not find."""
    return isinstance(entry, dict) and set(entry) == {"errors"} and set(entry["errors"]) == {"404"}


def _scalars(value: Any, key: str = "") -> Iterator[tuple[str, str]]:
    """(the key it is under, the value as text) for every scalar of a JSON value."""
    if isinstance(value, dict):
        for name, inner in value.items():
            yield from _scalars(inner, str(name))
    elif isinstance(value, list):
        for inner in value:
            yield from _scalars(inner, key)
    elif value is not None:
        yield key, str(value)


#: The victim's resources whose ids, sent by another tenant, must lead nowhere.
RESOURCES = ("dataset", "union", "batch", "file", "policy", "segment", "schedule", "segment_job", "export_job",
             "query", "preview", "connection", "datastream")


def resources_and_bodies(app: FastAPI, client: TestClient, org: Org) -> tuple[dict[str, str],
                                                                          dict[tuple[str, str], Any]]:
    """``valid_bodies`` for ``org`` (which creates a dataset, a merge policy, a segment and a schedule):
    the ids of those resources, and the bodies by (method, route template)."""
    bodies = valid_bodies(client, org)
    ids: dict[str, str] = {"sandbox": "dev", "ui_asset": "ui.js", "batch_field": "status"}
    keyed: dict[tuple[str, str], Any] = {}
    templates = [(m, t, _regex(t)) for m, t in served_routes(app)]
    for (method, path), body in bodies.items():
        (template, match) = next((t, r.match(path)) for m, t, r in templates if m == method and r.match(path))
        assert match is not None
        ids.update({PARAMETERS[k]: v for k, v in match.groupdict().items() if k in PARAMETERS})
        keyed[(method, template)] = body
    ids["union"] = bodies[("POST", "/data/core/ups/export/jobs")]["destination"]["datasetId"]
    return ids, keyed


def victim(app: FastAPI, client: TestClient, services: Services, drain: Callable[[], int]) -> Victim:
    """An org with one of each resource in ``prod`` (and an empty ``dev`` sandbox), built through the API."""
    org = make_org(services)
    headers = org.headers()
    ids, bodies = resources_and_bodies(app, client, org)
    assert client.post("/data/foundation/sandbox-management/sandboxes", headers=headers,
                       json={"name": "dev", "title": "Development", "type": "development"}).status_code == 201
    ids["batch"] = upload_batch(client, headers, ids["dataset"],
                                {"people.json": json_lines([person(i) for i in range(4)])})
    drain()  # ingestion converts the batch's files: Data Access lists them afterwards
    files = client.get(f"/data/foundation/export/batches/{ids['batch']}/files", headers=headers).json()["data"]
    ids["file"] = files[0]["dataSetFileId"]
    ids["file_name"] = client.get(f"/data/foundation/export/files/{ids['file']}",
                                  headers=headers).json()["data"][0]["name"]
    job = client.post("/data/core/ups/segment/jobs", headers=headers, json=[{"segmentId": ids["segment"]}])
    assert job.status_code == 200, job.text
    ids["segment_job"] = str(job.json()["id"])
    bodies[("POST", "/data/core/ups/segment/jobs/bulk-get")] = {"ids": [{"id": ids["segment_job"]}]}
    drain()
    export = client.post("/data/core/ups/export/jobs", headers=headers, json=bodies[("POST", "/data/core/ups/export/jobs")])
    assert export.status_code == 200, export.text
    ids["export_job"] = str(export.json()["id"])
    query = client.post("/data/foundation/query/queries", headers=headers, json={"sql": "SELECT count(*) FROM people"})
    assert query.status_code == 202, query.text
    ids["query"] = str(query.json()["id"])
    drain()
    preview = client.post("/data/core/ups/preview", headers=headers, json=bodies[("POST", "/data/core/ups/preview")])
    assert preview.status_code == 201, preview.text
    ids["preview"] = preview.json()["previewId"]
    connection = client.post("/data/foundation/flowservice/connections", headers=headers,
                             json=bodies[("POST", "/data/foundation/flowservice/connections")])
    assert connection.status_code == 201, connection.text
    ids["connection"] = connection.json()["id"]
    item = client.get(f"/data/foundation/flowservice/connections/{ids['connection']}", headers=headers).json()
    ids["inlet"] = item["items"][0]["auth"]["params"]["inletId"]
    datastream = client.post("/data/core/edge/datastreams", headers=headers,
                             json=bodies[("POST", "/data/core/edge/datastreams")])
    assert datastream.status_code == 201, datastream.text
    ids["datastream"] = datastream.json()["id"]
    drain()
    found = Victim(org=org, ids=ids, bodies=bodies)
    found.markers = {ids[k] for k in RESOURCES} | {"First1", "Last2"}
    return found


def snapshot(client: TestClient, app: FastAPI, target: Victim) -> dict[str, tuple[int, str]]:
    """What the victim reads of its own sandbox on every GET route: each answers 200."""
    seen = {}
    for method, template in served_routes(app):
        if method != "GET" or (method, template) in PUBLIC | NEVER_FOUND or ORG_LEVEL.match(template):
            continue
        response = client.get(target.fill(method, template), headers=target.org.headers(),
                              params=target.request(method, template)["params"])
        assert response.status_code == 200, (template, response.text)
        text = response.text
        if response.headers["content-type"].startswith("application/json"):
            body = response.json()
            if isinstance(body, dict):  # the answer's own time, not the resource's
                body = {k: v for k, v in body.items() if k not in ANSWER_TIME}
            text = json.dumps(body, sort_keys=True)
        seen[template] = (response.status_code, text)
    return seen


#: Fields that say when an answer was made (members ``at``, explain ``asOf``): the clock, not the resource.
ANSWER_TIME = {"at", "asOf"}


@dataclass(frozen=True)
class Variant:
    """A wrong caller: how its headers are made from the victim's and the attacker's credentials."""

    name: str
    headers: Callable[[Victim, Org, Services], dict[str, str]]


def _scoped_to_dev(target: Victim, _: Org, services: Services) -> dict[str, str]:
    with services.db.session() as session:
        issued = issue_credentials(session, target.org.org_id, "dev", sandbox_only=True)
    assert token_sandbox(issued.access_token) == "dev"
    scoped = Org(org_id=target.org.org_id, api_key=issued.api_key, token=issued.access_token)
    return scoped.headers("prod")


VARIANTS = [
    Variant("no credentials", lambda target, attacker, services: {}),
    Variant("wrong token", lambda target, attacker, services: {**target.org.headers(), "Authorization": "Bearer nope"}),
    Variant("another org's key", lambda target, attacker, services: {**attacker.headers(),
                                                                     "x-gw-ims-org-id": target.org.org_id}),
    Variant("another org", lambda target, attacker, services: attacker.headers()),
    Variant("another sandbox", lambda target, attacker, services: target.org.headers("dev")),
    Variant("credentials scoped to another sandbox", _scoped_to_dev),
]


@pytest.fixture
def strict_client(app: FastAPI) -> Iterator[TestClient]:
    """A client that sees a 500 as the server answers it, rather than as the server's exception."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_every_route_is_in_the_matrix(app: FastAPI) -> None:
    routes = served_routes(app)
    assert len(routes) >= 60
    assert PUBLIC <= set(routes)
    assert ("DELETE", "/data/core/ups/access/entities") in routes


@pytest.mark.parametrize("variant", VARIANTS, ids=[v.name for v in VARIANTS])
def test_tenancy_matrix(app: FastAPI, strict_client: TestClient, services: Services, drain: Callable[[], int],
                        variant: Variant) -> None:
    client = strict_client
    target = victim(app, client, services, drain)
    attacker = make_org(services)
    before = snapshot(client, app, target)
    headers = variant.headers(target, attacker, services)
    problems: list[str] = []
    for method, template in served_routes(app):
        path = target.fill(method, template)
        response = client.request(method, path, headers=headers, **target.request(method, template))
        call = f"{variant.name}: {method} {path} -> {response.status_code} {response.text[:300]}"
        try:
            _expect(variant.name, method, template, response, target)
        except AssertionError as failure:
            problems.append(f"{call}\n    {failure}")
    drain()  # work another tenant queued runs now, and must not touch the victim either
    assert not problems, f"{len(problems)} calls went wrong:\n" + "\n".join(problems)
    after = snapshot(client, app, target)
    changed = [f"{route}:\n  before {before[route]}\n  after  {after[route]}" for route in before
               if before[route] != after[route]]
    assert not changed, "the victim's resources changed:\n" + "\n".join(changed)


def _expect(variant: str, method: str, template: str, response: Any, target: Victim) -> None:
    """What ``variant`` may get from one route: the access check's answer, or nothing of the victim's."""
    public = (method, template) in PUBLIC
    if public:
        assert response.status_code == PUBLIC_STATUS.get((method, template), 200)
    elif variant in ("no credentials", "wrong token"):
        assert_gateway_error(response, 401, "401013")
    elif variant == "another org's key":
        assert_gateway_error(response, 403, "403010")
    elif variant == "credentials scoped to another sandbox" and not ORG_LEVEL.match(template):
        assert_aep_error(response, 403, detail_contains="scoped to sandbox 'dev'")
    elif ORG_LEVEL.match(template) and variant != "another org":
        assert response.status_code < 400, "sandbox management answers any credentials of the org"
    elif (method, template) in ANSWERS_WHAT_IT_FINDS:
        assert response.status_code < 500
    elif target.names_victim(method, template) or (ORG_LEVEL.match(template) and "{" in template):
        assert response.status_code in (400, 404), "another tenant's resource must not be found"
        assert_aep_error(response, response.status_code)
    else:
        assert response.status_code < 500
        if response.status_code >= 400:
            assert_aep_error(response, response.status_code)
    if response.status_code < 400:
        leaked = target.leaks(response)
        assert not leaked, f"the answer holds the victim's {leaked}"


@dataclass(frozen=True)
class InSandbox(Org):
    """An org's credentials whose requests go to ``sandbox`` unless told otherwise (for ``valid_bodies``)."""

    sandbox: str = "dev"

    def headers(self, sandbox: str | None = None) -> dict[str, str]:
        return super().headers(sandbox or self.sandbox)


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else None
    if children is None:
        yield path, value
        return
    for key, inner in children:
        yield from _leaves(inner, (*path, key))


def _replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    copied = json.loads(json.dumps(body))
    inner = copied
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return copied


@pytest.mark.parametrize("where", ["another org", "another sandbox"])
def test_each_reference_to_another_tenants_resource_alone_is_refused(
        app: FastAPI, strict_client: TestClient, services: Services, drain: Callable[[], int], where: str) -> None:
    """Every id of the victim's in a body, sent alone in a body that is otherwise valid in the attacker's own
    tenant (its own dataset, policy, segment...), answers 400 or 404: no check hides behind another."""
    client = strict_client
    target = victim(app, client, services, drain)
    attacker = make_org(services) if where == "another org" else InSandbox(
        org_id=target.org.org_id, api_key=target.org.api_key, token=target.org.token)
    own_ids, own_bodies = resources_and_bodies(app, client, attacker)
    own = Victim(org=attacker, ids={**target.ids, **own_ids}, bodies=own_bodies)
    victim_ids = {target.ids[k] for k in RESOURCES}
    before = snapshot(client, app, target)
    problems, sent = [], 0
    for (method, template), body in target.bodies.items():
        for path, value in _leaves(body):
            if not isinstance(value, str) or value not in victim_ids:  # job ids are small integers, like versions
                continue
            sent += 1
            mixed = _replaced(own_bodies[(method, template)], path, value)
            response = client.request(method, own.fill(method, template), headers=attacker.headers(), json=mixed)
            where_ = f"{method} {template} {'.'.join(map(str, path))}={value}"
            if (method, template) in ANSWERS_WHAT_IT_FINDS and response.status_code == 207:
                leaked = target.leaks(response)
                if leaked:
                    problems.append(f"{where_} -> 200 holding {leaked}")
            elif response.status_code not in (400, 404):
                problems.append(f"{where_} -> {response.status_code} {response.text[:300]}")
            else:
                assert_aep_error(response, response.status_code)
    drain()
    assert sent >= 10
    assert not problems, f"{len(problems)} references reached another tenant:\n" + "\n".join(problems)
    after = snapshot(client, app, target)
    assert [route for route in before if before[route] != after[route]] == []


@pytest.mark.parametrize("where", ["another org", "another sandbox"])
def test_preview_refuses_in_segment_of_another_tenant(client: TestClient, services: Services, org: Org,
                                                      where: str) -> None:
    """Regression: ``POST /preview`` accepted ``inSegment`` of another org's (or sandbox's) segment id."""
    from tests.api.test_definitions import define

    segment = define(client, org, "US", 'homeAddress.country = "US"')["id"]
    if where == "another org":
        headers = make_org(services).headers()
    else:
        assert client.post("/data/foundation/sandbox-management/sandboxes", headers=org.headers(),
                           json={"name": "dev", "title": "Development", "type": "development"}).status_code == 201
        headers = org.headers("dev")
    response = client.post("/data/core/ups/preview", headers=headers, json={
        "predicateExpression": f'inSegment("{segment}")', "predicateType": "pql/text",
        "predicateModel": "_xdm.context.profile"})
    body = assert_aep_error(response, 400, detail_contains=segment)
    assert body["report"]["field"] == "predicateExpression"
    # In the segment's own sandbox the same preview is accepted.
    own = client.post("/data/core/ups/preview", headers=org.headers(), json={
        "predicateExpression": f'inSegment("{segment}")', "predicateType": "pql/text",
        "predicateModel": "_xdm.context.profile"})
    assert own.status_code == 201, own.text


def test_credentials_scoped_to_a_sandbox_work_there_only(client: TestClient, services: Services, org: Org) -> None:
    with services.db.session() as session:
        issued = issue_credentials(session, org.org_id, "dev", sandbox_only=True)
    scoped = Org(org_id=org.org_id, api_key=issued.api_key, token=issued.access_token)
    created = client.post("/data/foundation/catalog/dataSets", headers=scoped.headers("dev"),
                          json={"name": "dev people", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile"}})
    assert created.status_code == 201, created.text
    dataset_id = created.json()[0].split("/")[-1]
    assert dataset_id in client.get("/data/foundation/catalog/dataSets", headers=scoped.headers("dev")).json()
    # The org-wide credentials read dev too; the scoped ones read neither prod (the default) nor a sandbox
    # that does not exist (403 before the 404, so a scoped key learns no sandbox names).
    assert dataset_id in client.get("/data/foundation/catalog/dataSets", headers=org.headers("dev")).json()
    for sandbox in ("prod", None, "nosuch"):
        response = client.get("/data/foundation/catalog/dataSets", headers=scoped.headers(sandbox))
        body = assert_aep_error(response, 403, detail_contains="scoped to sandbox 'dev'")
        assert body["report"]["field"] == "x-sandbox-name"
