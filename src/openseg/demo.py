"""``openseg serve --demo``: an org, demo profiles and events loaded through batch ingestion, a few
segment definitions evaluated once, and credentials with a ready-to-paste curl."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from openseg.catalog import service as catalog
from openseg.catalog.processing import INGEST_BATCH
from openseg.container import Services
from openseg.demo_data import events, profiles, write_jsonl
from openseg.scope import Scope
from openseg.segmentation import definitions, jobs
from openseg.store import tenancy
from openseg.store.models import Dataset
from openseg.store.tenancy import issue_credentials
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
    settings = services.settings
    base = f"http://{settings.host}:{settings.port}"
    print_to("openseg demo ready. Credentials:")
    print_to(f"  export ACCESS_TOKEN={issued.access_token} API_KEY={issued.api_key} IMS_ORG={issued.org_id}")
    print_to(f"Open the UI (charts of jobs and segment sizes): {base}/ui#token={issued.access_token}"
             f"&key={issued.api_key}&org={issued.org_id}&sandbox=prod")
    print_to("Try:")
    print_to(
        f"  curl -s {base}/data/core/ups/segment/jobs -H \"Authorization: Bearer $ACCESS_TOKEN\" "
        f"-H \"x-api-key: $API_KEY\" -H \"x-gw-ims-org-id: $IMS_ORG\" -H 'x-sandbox-name: prod'"
    )
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
    both = (f'inSegment("{ids["US residents"]}") and inSegment("{ids["Gold and platinum members"]}")')
    definitions.create_definition(services.uow(), scope, {
        "name": "US gold and platinum", "expression": {"type": "PQL", "format": "pql/text", "value": both},
    }, lambda: sandbox_schema(services, scope))
    jobs.create_job(services.uow(), scope, [{"segmentId": "*"}], origin="demo")
    assert services.worker is not None
    services.worker.run_until_idle()


__all__ = ["DEMO_ORG", "DEMO_SEGMENTS", "ensure_demo"]
