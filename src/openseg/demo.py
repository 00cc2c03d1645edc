"""``openseg serve --demo``: an org, demo profiles and events loaded through batch ingestion, a few
segment definitions evaluated once, a few product views streamed (each start) so that the streaming segment
changes while the server runs, and credentials with a ready-to-paste curl."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from openseg.catalog import service as catalog
from openseg.catalog.processing import INGEST_BATCH
from openseg.clock import now_ms
from openseg.container import Services
from openseg.demo_data import events, profiles, write_jsonl
from openseg.scope import Scope
from openseg.segmentation import definitions, jobs
from openseg.store import tenancy
from openseg.store.models import Dataset, StreamingConnection
from openseg.store.tenancy import issue_credentials
from openseg.streaming.collection import Collector
from openseg.streaming.connections import Where, create_connection
from openseg.worker.queue import enqueue

DEMO_ORG = "demo@AdobeOrg"
PROFILES_DATASET = "Demo profiles"
EVENTS_DATASET = "Demo experience events"

#: name -> PQL: an attribute, an event window, a sequence, and a segment of segments.
DEMO_SEGMENTS = {
    "US residents": 'homeAddress.country = "US"',
    "Gold and platinum members": 'loyalty.tier in ["gold", "platinum"]',
    "Frequent buyers (30 days)": (
        'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 30 days before now].count() >= 2'
    ),
    "Viewed then bought within a week": (
        'chain(xEvent, timestamp, [C0: WHAT(eventType = "commerce.productViews") WHEN(<= 90 days before now), '
        'C1: WHAT(eventType = "commerce.purchases") WHEN(<= 7 days after C0)])'
    ),
}
#: The streaming (continuous) demo segment: the product views the demo streams enter it at once, and an hour
#: later they leave it with no new event.
STREAMING_SEGMENT = "Viewed a product in the last hour"
STREAMING_PQL = 'xEvent[eventType = "commerce.productViews" and timestamp occurs <= 1 hours before now]'
DEMO_CONNECTION = "Demo web events"
#: How many demo profiles get a streamed product view at each start.
STREAMED_VIEWS = 5


def ensure_demo(services: Services, print_to: Callable[[str], None] = print, *, profile_count: int = 10_000,
                event_count: int = 100_000) -> dict[str, str]:
    """Create (once) the demo org's data and segments; always print fresh credentials."""
    with services.db.session() as session:
        issued = issue_credentials(session, DEMO_ORG, "prod")
        sandbox = tenancy.find_sandbox(session, DEMO_ORG, "prod")
        assert sandbox is not None
        scope = Scope(DEMO_ORG, sandbox.id)
        loaded = session.scalars(select(Dataset.id).where(Dataset.sandbox_id == scope.sandbox_id,
                                                          Dataset.name == PROFILES_DATASET)).first()
    if loaded is None:
        print_to(f"Loading demo data: {profile_count:,} profiles and {event_count:,} events ...")
        _load(services, scope, profile_count, event_count)
        _define_and_run(services, scope)
    streamed = stream_views(services, scope)
    settings = services.settings
    base = f"http://{settings.host}:{settings.port}"
    print_to(f"Streamed {len(streamed)} product views ({', '.join(streamed)}): they enter the streaming segment "
             f"'{STREAMING_SEGMENT}' within a second of the start, and leave it an hour later.")
    print_to("openseg demo ready. Credentials:")
    print_to(f"  export ACCESS_TOKEN={issued.access_token} API_KEY={issued.api_key} IMS_ORG={issued.org_id}")
    print_to(f"Open the UI (charts of jobs and segment sizes): {base}/ui#token={issued.access_token}"
             f"&key={issued.api_key}&org={issued.org_id}&sandbox=prod")
    headers = ("-H \"Authorization: Bearer $ACCESS_TOKEN\" -H \"x-api-key: $API_KEY\" "
               "-H \"x-gw-ims-org-id: $IMS_ORG\" -H 'x-sandbox-name: prod'")
    print_to("Try:")
    print_to(f"  curl -s {base}/data/core/ups/segment/jobs {headers}")
    if streamed:
        print_to(f"  curl -s '{base}/data/core/ups/access/entities?schema.name=_xdm.context.profile"
                 f"&entityId={streamed[0]}&entityIdNS=email' {headers}   # segmentMembership.ups: realized")
    return issued.to_json()


def _load(services: Services, scope: Scope, profile_count: int, event_count: int) -> None:
    work = services.settings.home / "demo-upload"
    work.mkdir(parents=True, exist_ok=True)
    identities: list[dict[str, Any]] = []

    def remember(records: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for record in records:
            identities.append(record["identityMap"])
            yield record

    write_jsonl(remember(profiles(profile_count)), work / "profiles.json")
    now = datetime.now(UTC)
    write_jsonl(events(identities, event_count, now), work / "events.json")
    profile_tags = {"unifiedProfile": ["enabled:true"]}
    for name, schema, file in ((PROFILES_DATASET, catalog.PROFILE_SCHEMA, "profiles.json"),
                               (EVENTS_DATASET, catalog.EVENT_SCHEMA, "events.json")):
        with services.db.session() as session:
            dataset = catalog.create_dataset(session, scope, {"name": name, "schemaRef": {"id": schema},
                                                              "tags": profile_tags})
            batch = catalog.create_batch(session, scope, {"datasetId": dataset.id,
                                                          "inputFormat": {"format": "json"}})
            target = catalog.stage_file_target(services.settings.staging, batch.id, file)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(work / file), target)
            catalog.record_upload(session, batch, file, target, target.stat().st_size)
            catalog.complete_batch(session, scope, batch.id)
            enqueue(session, INGEST_BATCH, batch.id)
    assert services.worker is not None
    services.worker.run_until_idle()
    shutil.rmtree(work, ignore_errors=True)


def _define_and_run(services: Services, scope: Scope) -> None:
    from openseg.profiles.service import sandbox_schema

    ids: dict[str, str] = {}
    for name, pql in DEMO_SEGMENTS.items():
        body = {"name": name, "expression": {"type": "PQL", "format": "pql/text", "value": pql}}
        ids[name] = definitions.create_definition(services.uow(), scope, body,
                                                  lambda: sandbox_schema(services, scope)).id
    definitions.create_definition(services.uow(), scope, {
        "name": STREAMING_SEGMENT, "expression": {"type": "PQL", "format": "pql/text", "value": STREAMING_PQL},
        "evaluationInfo": {"continuous": {"enabled": True}},
    }, lambda: sandbox_schema(services, scope))
    both = (f'inSegment("{ids["US residents"]}") and inSegment("{ids["Gold and platinum members"]}")')
    definitions.create_definition(services.uow(), scope, {
        "name": "US gold and platinum", "expression": {"type": "PQL", "format": "pql/text", "value": both},
    }, lambda: sandbox_schema(services, scope))
    jobs.create_job(services.uow(), scope, [{"segmentId": "*"}], origin="demo")
    assert services.worker is not None
    services.worker.run_until_idle()


def stream_views(services: Services, scope: Scope, count: int = STREAMED_VIEWS) -> list[str]:
    """Stream a product view, timestamped now, for each of the first ``count`` demo profiles through a
    streaming connection of the demo events dataset (created once), as a web site would; the streamer of
    the server evaluates them. Returns the profiles' emails."""
    store = services.streaming_store()
    with services.db.session() as session:
        events_dataset = session.scalars(select(Dataset.id).where(Dataset.sandbox_id == scope.sandbox_id,
                                                                  Dataset.name == EVENTS_DATASET)).first()
        existing = session.scalars(select(StreamingConnection.id).where(
            StreamingConnection.sandbox_id == scope.sandbox_id, StreamingConnection.dataset_id == events_dataset,
            StreamingConnection.name == DEMO_CONNECTION)).first()
    if events_dataset is None:
        return []
    connection = store.get(scope.org_id, scope.sandbox_id, existing) if existing else None
    if connection is None:
        connection = create_connection(store, store, Where(scope.org_id, scope.sandbox_id, "prod"), {
            "name": DEMO_CONNECTION, "connectionSpec": {"id": "bc7b00d6-623a-4dfc-9fdb-f1240aeadaeb", "version": "1.0"},
            "auth": {"specName": "Streaming Connection", "params": {"dataType": "xdm", "datasetId": events_dataset}},
        }, now_ms())
    collector = Collector(store, store, services.stream_log(), now_ms)
    emails = [p["identityMap"]["email"][0]["id"] for p in profiles(count)]
    at = datetime.now(UTC)
    for email in emails:
        record = {"_id": f"demo-view-{email}-{now_ms()}", "timestamp": at.isoformat().replace("+00:00", "Z"),
                  "eventType": "commerce.productViews", "identityMap": {"email": [{"id": email, "primary": True}]}}
        collector.collect(connection, {"header": {"schemaRef": {"id": catalog.EVENT_SCHEMA}},
                                       "body": {"xdmEntity": record}}, sync=False)
    return emails


__all__ = ["DEMO_ORG", "DEMO_SEGMENTS", "STREAMING_SEGMENT", "ensure_demo", "stream_views"]
