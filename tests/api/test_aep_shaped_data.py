"""AEP-shaped data (standard field groups plus a tenant object) through the HTTP API: definitions over its
fields are accepted as soon as the batch succeeds, dates are typed, and a job selects the right members."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.testclient import TestClient

from openseg.container import Services
from openseg.profiles.service import BUILD_PROFILES
from openseg.store.models import WorkItem
from tests.api.aep import assert_aep_error
from tests.api.flows import EVENT, create_dataset, get_batch, json_lines, upload_batch
from tests.api.test_segment_jobs import run_job
from tests.conftest import Org

DEFINITIONS = "/data/core/ups/segment/definitions"
MEMBERS = "/data/core/ups/access/entities"


def aep_profile(name: str, birth: str | None, country: str | None, interests: list[str] | None) -> dict[str, Any]:
    """A profile as AEP's Demographic, Personal Contact and Work Contact Details field groups shape it."""
    record: dict[str, Any] = {
        "_id": f"crm-{name}",
        "identityMap": {"ECID": [{"id": f"ecid-{name}", "authenticatedState": "ambiguous"}],
                        "Email": [{"id": f"{name}@example.com", "primary": True}]},
        "personalEmail": {"address": f"{name}@example.com", "primary": True, "status": "active"},
        "person": {"name": {"firstName": name.title(), "lastName": "Example"}, "gender": "not_specified"},
        "homeAddress": {"city": "Paris", "countryCode": "FR", "postalCode": "75001"},
        "loyalty": {"tier": "gold", "points": 120.5, "joinDate": "2021-03-04T10:00:00+01:00"},
        "_repo": {"createDate": "2024-01-02T03:04:05Z"},
    }
    if birth is not None:
        record["person"]["birthDate"] = birth
        record["person"]["birthYear"] = int(birth[:4])
    if country is not None:
        record["workAddress"] = {"country": country, "city": "Lyon"}
    if interests is not None:
        record["_acme"] = {"interests": interests, "householdSize": len(interests)}
    return record


PEOPLE = [
    aep_profile("ann", "1988-06-14", "France", ["golf", "wine"]),
    aep_profile("bob", "1975-06-02", "United States", ["sailing"]),
    aep_profile("cat", "1990-03-15", "France", ["golf"]),
    aep_profile("dan", "1984-11-30", None, None),
]
EVENTS = [
    {"_id": "ev1", "timestamp": "2026-11-02T09:00:00Z", "eventType": "commerce.purchases",
     "identityMap": {"ECID": [{"id": "ecid-ann"}]},
     "commerce": {"purchases": {"value": 1}, "order": {"priceTotal": 99.5, "currencyCode": "EUR"}},
     "productListItems": [{"SKU": "GOLF-1", "quantity": 2, "priceTotal": 99.5}],
     "web": {"webPageDetails": {"name": "checkout", "URL": "https://shop.example.com/checkout"}}},
    {"_id": "ev2", "timestamp": "2026-11-03T09:00:00+02:00", "eventType": "web.webpagedetails.pageViews",
     "identityMap": {"ECID": [{"id": "ecid-bob"}]},
     "web": {"webPageDetails": {"name": "home", "URL": "https://shop.example.com/"}},
     "environment": {"browserDetails": {"userAgent": "Mozilla/5.0"}}},
]


def ingest_without_build(client: TestClient, org: Org, services: Services,
                         batches: dict[str, list[dict[str, Any]]]) -> None:
    """Upload and ingest one batch per dataset, leaving the profile build they queue unrun."""
    batch_ids = [upload_batch(client, org.headers(), dataset_id, {"data.json": json_lines(records)})
                 for dataset_id, records in batches.items()]
    assert services.worker is not None
    for batch_id in batch_ids:
        assert services.worker.run_once()
        batch = get_batch(client, org.headers(), batch_id)
        assert batch["status"] == "success", batch
    with services.db.session() as session:
        assert [i.kind for i in session.query(WorkItem).filter(WorkItem.status == "queued")] == [BUILD_PROFILES]


def define(client: TestClient, org: Org, name: str, pql: str) -> str:
    response = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": name, "schema": {"name": "_xdm.context.profile"},
        "expression": {"type": "PQL", "format": "pql/text", "value": pql}})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def members(client: TestClient, org: Org, segment_id: str, names: tuple[str, ...] = ("ann", "bob", "cat", "dan")
            ) -> list[str]:
    """Which of the named people the segment holds (realized or existing), read from their profiles."""
    found = []
    for name in names:
        email = f"{name}@example.com"
        response = client.get(MEMBERS, headers=org.headers(), params={
            "schema.name": "_xdm.context.profile", "entityId": email, "entityIdNS": "Email"})
        assert response.status_code == 200, response.text
        (entity,) = response.json().values()
        status = entity["entity"].get("segmentMembership", {}).get("ups", {}).get(segment_id, {}).get("status")
        if status in ("realized", "existing"):
            found.append(name)
    return found


def test_definitions_over_aep_shaped_data_are_accepted_at_once_and_select_the_right_people(
        client: TestClient, org: Org, services: Services, drain: Callable[[], int]) -> None:
    people = create_dataset(client, org.headers(), "crm")
    events = create_dataset(client, org.headers(), "web", EVENT)
    ingest_without_build(client, org, services, {people: PEOPLE, events: EVENTS})

    # No job and no build has run: the tenant fields are known because the batch that brought them succeeded.
    segments = {
        "birthYear": define(client, org, "born 1985 or later", "person.birthYear >= 1985"),
        "workCountry": define(client, org, "works in France", 'workAddress.country = "France"'),
        "june": define(client, org, "born in June", "person.birthDate.getMonth() = 6"),
        "eighties": define(client, org, "born 1985-1990",
                           "person.birthDate occurs between date(1985, 1, 1) and date(1990, 12, 31)"),
        "golfers": define(client, org, "golfers", '_acme.interests.includes("golf")'),
        "households": define(client, org, "households", "_acme.householdSize >= 2"),
        "joined": define(client, org, "joined in 2021", "loyalty.joinDate.getYear() = 2021"),
        "golfBuyers": define(client, org, "golf buyers",
                             'xEvent[productListItems.exists(SKU = "GOLF-1") and commerce.order.priceTotal > 50]'
                             ".count() > 0"),
    }
    unknown = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "typo", "expression": {"type": "PQL", "format": "pql/text", "value": '_acme.interest.includes("golf")'}})
    assert_aep_error(unknown, 400)
    assert "unknown field _acme.interest (did you mean _acme.interests?)" in unknown.text

    drain()
    run_job(client, org, drain, *segments.values())
    assert {name: members(client, org, segment) for name, segment in segments.items()} == {
        "birthYear": ["ann", "cat"],
        "workCountry": ["ann", "cat"],
        "june": ["ann", "bob"],
        "eighties": ["ann", "cat"],
        "golfers": ["ann", "cat"],
        "households": ["ann"],
        "joined": ["ann", "bob", "cat", "dan"],
        "golfBuyers": ["ann"],
    }


def test_a_value_that_does_not_fit_its_standard_type_is_a_record_error(
        client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    dataset = create_dataset(client, org.headers(), "crm")
    bad_year = aep_profile("eve", "1991-02-03", "France", ["golf"])
    bad_year["person"]["birthYear"] = "1991"
    bad_date = aep_profile("fay", None, None, None)
    bad_date["person"]["birthDate"] = "03/02/1991"
    bad_date["workAddress"] = {"country": 33}
    batch_id = upload_batch(client, org.headers(), dataset, {"crm.json": json_lines([PEOPLE[0], bad_year, bad_date])})
    drain()
    batch = get_batch(client, org.headers(), batch_id)
    assert batch["status"] == "failed"
    assert [e["description"] for e in batch["errors"]] == [
        "record 2 of crm.json: field 'person.birthYear' must be an integer (its XDM type), not \"1991\"",
        "record 3 of crm.json: field 'person.birthDate' must be a date (YYYY-MM-DD) (its XDM type), not \"03/02/1991\"",
        "record 3 of crm.json: field 'workAddress.country' must be a string (its XDM type), not 33",
    ]


def test_a_tenant_field_brought_by_a_later_batch_is_usable_before_any_build(
        client: TestClient, org: Org, services: Services, drain: Callable[[], int]) -> None:
    dataset = create_dataset(client, org.headers(), "crm")
    upload_batch(client, org.headers(), dataset, {"a.json": json_lines([aep_profile("ann", None, None, None)])})
    drain()  # ingested and built: the store knows no _acme field
    refused = client.post(DEFINITIONS, headers=org.headers(), json={
        "name": "golfers", "expression": {"type": "PQL", "format": "pql/text", "value": '_acme.interests.includes("golf")'}})
    assert_aep_error(refused, 400)
    ingest_without_build(client, org, services, {dataset: [aep_profile("bob", None, None, ["golf"])]})
    golfers = define(client, org, "golfers", '_acme.interests.includes("golf")')
    drain()
    run_job(client, org, drain, golfers)
    assert members(client, org, golfers, ("ann", "bob")) == ["bob"]


def test_a_parquet_column_that_cannot_hold_its_standard_type_is_refused(
        client: TestClient, org: Org, drain: Callable[[], int]) -> None:
    table = pa.table({
        "identityMap": pa.array([[("Email", [{"id": "gus@example.com", "primary": True}])]],
                                pa.map_(pa.string(), pa.list_(pa.struct([("id", pa.string()), ("primary", pa.bool_())])))),
        "person": pa.array([{"birthDate": "1991-02-03", "birthYear": 1991}]),
        "_acme": pa.array([{"interests": ["golf"]}]),
    })
    sink = io.BytesIO()
    pq.write_table(table, sink)
    dataset = create_dataset(client, org.headers(), "crm")
    batch_id = upload_batch(client, org.headers(), dataset, {"crm.parquet": sink.getvalue()}, fmt="parquet")
    drain()
    batch = get_batch(client, org.headers(), batch_id)
    assert batch["status"] == "failed"
    assert [e["description"] for e in batch["errors"]] == [
        "record 1 of crm.parquet: field 'person.birthDate' has Parquet type string, which cannot hold "
        "a date (YYYY-MM-DD) (its XDM type)",
    ]

    typed = table.set_column(1, "person", pa.array([{"birthDate": date(1991, 2, 3), "birthYear": 1991}]))
    sink = io.BytesIO()
    pq.write_table(typed, sink)
    ok = upload_batch(client, org.headers(), dataset, {"crm.parquet": sink.getvalue()}, fmt="parquet")
    drain()
    assert get_batch(client, org.headers(), ok)["status"] == "success"
