"""Seeded, realistic demo XDM: profiles with names, home addresses, loyalty and identities, and
commerce/web ExperienceEvents over the last 180 days."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

FIRST = ["Ann", "Bob", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jade", "Kofi", "Lena", "Mia",
         "Noah", "Olga", "Pia", "Raj", "Sara", "Tom", "Uma", "Vic", "Wen", "Yara", "Zoe"]
LAST = ["Smith", "Garcia", "Chen", "Müller", "Dubois", "Tanaka", "Silva", "Patel", "Kim", "Rossi", "Novak",
        "Okafor", "Jensen", "Lopez", "Nguyen"]
COUNTRIES = [("US", ["New York", "Austin", "Seattle", "Denver"], 0.40), ("GB", ["London", "Leeds"], 0.10),
             ("FR", ["Paris", "Lyon"], 0.10), ("DE", ["Berlin", "Munich"], 0.10), ("CA", ["Toronto"], 0.07),
             ("JP", ["Tokyo", "Osaka"], 0.07), ("BR", ["São Paulo"], 0.06), ("IN", ["Mumbai", "Pune"], 0.05),
             ("AU", ["Sydney"], 0.03), ("ES", ["Madrid"], 0.02)]
TIERS = [("bronze", 0.5), ("silver", 0.3), ("gold", 0.15), ("platinum", 0.05)]
EVENT_TYPES = [("web.webpagedetails.pageViews", 0.45), ("commerce.productViews", 0.2),
               ("commerce.productListAdds", 0.1), ("commerce.checkouts", 0.05), ("commerce.purchases", 0.06),
               ("message.opened", 0.07), ("message.clicked", 0.04), ("application.launch", 0.03)]
PRODUCTS = [("SKU-TENT", "Tent", 249.0), ("SKU-BOOT", "Hiking boots", 129.5), ("SKU-LAMP", "Head lamp", 34.9),
            ("SKU-BAG", "Sleeping bag", 89.0), ("SKU-MUG", "Camp mug", 12.0), ("SKU-STOVE", "Stove", 59.99)]
PAGES = ["home", "search", "product", "cart", "checkout", "account", "blog"]


def _pick(rng: random.Random, weighted: list[tuple[Any, ...]]) -> tuple[Any, ...]:
    return rng.choices(weighted, weights=[w[-1] for w in weighted])[0]


def profiles(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    rng = random.Random(seed)
    for i in range(count):
        country, cities, _ = _pick(rng, COUNTRIES)
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower()}{i}@example.com".replace("ü", "u")
        identity: dict[str, Any] = {"email": [{"id": email, "primary": True}]}
        if rng.random() < 0.7:
            identity["ECID"] = [{"id": f"{i:012d}{seed:04d}"}]
        tier = _pick(rng, TIERS)[0]
        record: dict[str, Any] = {
            "identityMap": identity,
            "person": {"name": {"firstName": first, "lastName": last},
                       "birthDate": (date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))).isoformat(),
                       "gender": rng.choice(["female", "male", "not_specified"])},
            "homeAddress": {"country": country, "city": rng.choice(cities), "postalCode": f"{rng.randrange(10000, 99999)}"},
            "personalEmail": {"address": email},
            "loyalty": {"tier": tier, "points": rng.randrange(0, 20000),
                        # An XDM date-time (Loyalty Details), not a date: midnight UTC of the day joined.
                        "joinDate": f"{date(2015, 1, 1) + timedelta(days=rng.randrange(3600))}T00:00:00Z"},
        }
        if rng.random() < 0.05:
            del record["homeAddress"]["city"]
        yield record


def events(identities: Sequence[Mapping[str, Any]], count: int, now: datetime, seed: int = 11
           ) -> Iterator[dict[str, Any]]:
    """``count`` events of the profiles whose ``identityMap``s are ``identities``, over the 180 days before
    ``now``; each carries one identity of its profile, so every event links to a profile."""
    rng = random.Random(seed)
    start = now - timedelta(days=180)
    span = int((now - start).total_seconds())
    for i in range(count):
        known = identities[rng.randrange(len(identities))]
        # Two thirds of the events carry the profile's ECID (when it has one), the rest its email.
        namespace = "ECID" if "ECID" in known and rng.random() < 0.66 else "email"
        event_type = _pick(rng, EVENT_TYPES)[0]
        when = start + timedelta(seconds=rng.randrange(span))
        record: dict[str, Any] = {
            "_id": f"demo-{i}",
            "timestamp": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "eventType": event_type,
            "identityMap": {namespace: [{"id": known[namespace][0]["id"]}]},
            "web": {"webPageDetails": {"name": rng.choice(PAGES)}},
        }
        if event_type.startswith("commerce."):
            items = [rng.choice(PRODUCTS) for _ in range(rng.randint(1, 3))]
            record["productListItems"] = [{"SKU": s, "name": n, "quantity": 1, "priceTotal": v} for s, n, v in items]
            if event_type == "commerce.purchases":
                record["commerce"] = {"order": {"priceTotal": round(sum(v for _, _, v in items), 2),
                                                "currencyCode": "USD"}, "purchases": {"value": 1}}
        yield record


def write_jsonl(records: Iterator[dict[str, Any]], path: Path) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False))
            handle.write("\n")
            count += 1
    return count
