"""Issue 14's remaining reference constructs through the whole service: ingested AEP-shaped data, definitions
created over the API, a segment job (the planner reads the store's Arrow schema for tenant arrays)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from openseg.container import Services
from tests.api.flows import EVENT, create_dataset
from tests.api.test_aep_shaped_data import aep_profile, define, ingest_without_build, members
from tests.api.test_segment_jobs import run_job
from tests.conftest import Org


def _with_orders(name: str, country: str, stores: list[str]) -> dict[str, Any]:
    record = aep_profile(name, None, None, None)
    record["homeAddress"]["countryCode"] = country
    record["_acme"] = {"orders": [{"storeId": store, "price": 10.0 * (index + 1)} for index, store in enumerate(stores)]}
    return record


PEOPLE = [_with_orders("ann", "FR", ["paris", "lyon"]), _with_orders("bob", "US", ["nyc", "nyc"]),
          _with_orders("cat", "FR", [])]
EVENTS = [
    {"_id": "ev1", "timestamp": "2026-11-02T09:00:00Z", "eventType": "commerce.purchases",
     "identityMap": {"ECID": [{"id": "ecid-ann"}]},
     "productListItems": [{"SKU": "GOLF-1", "quantity": 2, "priceTotal": 99.5}]},
    {"_id": "ev2", "timestamp": "2026-11-03T09:00:00Z", "eventType": "commerce.purchases",
     "identityMap": {"ECID": [{"id": "ecid-bob"}]},
     "productListItems": [{"SKU": "TENT-1", "quantity": 1, "priceTotal": 10.0}]},
    {"_id": "ev3", "timestamp": "2026-11-03T10:00:00Z", "eventType": "web.webpagedetails.pageViews",
     "identityMap": {"ECID": [{"id": "ecid-cat"}]}, "productListItems": [{"SKU": "TENT-1", "quantity": 1}]},
]


def test_arrays_lambdas_the_up_operator_and_let_in_a_job(client: TestClient, org: Org, services: Services,
                                                         drain: Callable[[], int]) -> None:
    people = create_dataset(client, org.headers(), "crm")
    events = create_dataset(client, org.headers(), "web", EVENT)
    ingest_without_build(client, org, services, {people: PEOPLE, events: EVENTS})
    segments = {
        # array-functions.md: person.orders.storeId.distinct().count() > 1, on a tenant array of objects
        "stores": define(client, org, "several stores", "_acme.orders.storeId.distinct().count() > 1"),
        "email": define(client, org, "email id", 'identityMap.Email.id.includes("bob@example.com")'),
        "lambda": define(client, org, "big orders", "_acme.orders.filter(o => o.price > 15).count() >= 1"),
        # filter-functions.md: ^^ from a product item is the profile
        "up": define(client, org, "golf or American",
                     'xEvent[productListItems[SKU = "GOLF-1" or ^^.homeAddress.countryCode = "US"]]'),
        "upEvent": define(client, org, "tents bought",
                          'xEvent[productListItems[SKU = "TENT-1" and ^.eventType = "commerce.purchases"]]'),
        "let": define(client, org, "two names", "let N = _acme.orders.count(), T = _acme.orders.price.sum() "
                                                "in N >= 2 and T < 40"),
    }
    drain()
    run_job(client, org, drain, *segments.values())
    assert {name: members(client, org, segment, ("ann", "bob", "cat")) for name, segment in segments.items()} == {
        "stores": ["ann"], "email": ["bob"], "lambda": ["ann", "bob"], "up": ["ann", "bob"], "upEvent": ["bob"],
        "let": ["ann", "bob"],
    }
