"""Seeded generator of merged profiles and their ExperienceEvents for differential tests.

The same data comes out in two forms: Python dicts (what ``to_python`` predicates read: XDM-shaped,
missing keys simply absent, tz-aware UTC datetimes) and Arrow tables with the explicit schemas of the
merged profile store in docs/architecture.md (what the SQL engines read).

The generator deliberately produces the places where engines disagree: NULL and missing fields,
empty arrays and maps, case variants and padded strings, timestamps one second either side of window
and calendar boundaries relative to ``AS_OF``, zero and negative amounts, leap-day birthdays.
"""

from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from openseg.segmentation.membership import BitsRelation, relation_from_long_form

UTC = dt.UTC
#: The evaluation time every test uses (a Saturday, mid-month, mid-year).
AS_OF = dt.datetime(2024, 6, 15, 12, 0, 0, tzinfo=UTC)

IDENTITY = pa.struct([("id", pa.string()), ("primary", pa.bool_())])
MEMBERSHIP_ENTRY = pa.struct([("status", pa.string()), ("lastQualificationTime", pa.timestamp("us"))])

PROFILE_SCHEMA = pa.schema(
    [
        ("_profile_id", pa.string()),
        (
            "person",
            pa.struct(
                [
                    ("name", pa.struct([("firstName", pa.string()), ("lastName", pa.string())])),
                    ("birthDate", pa.date32()),
                    ("birthYear", pa.int64()),
                    ("gender", pa.string()),
                ]
            ),
        ),
        (
            "homeAddress",
            pa.struct(
                [
                    ("country", pa.string()),
                    ("countryCode", pa.string()),
                    ("city", pa.string()),
                    ("postalCode", pa.string()),
                ]
            ),
        ),
        (
            "loyalty",
            pa.struct(
                [
                    ("tier", pa.string()),
                    ("points", pa.int64()),
                    ("lifetimeValue", pa.float64()),
                    ("joinDate", pa.timestamp("us")),
                ]
            ),
        ),
        ("personalEmail", pa.struct([("address", pa.string()), ("status", pa.string())])),
        ("identityMap", pa.map_(pa.string(), pa.list_(IDENTITY))),
        ("segmentMembership", pa.struct([("ups", pa.map_(pa.string(), MEMBERSHIP_ENTRY))])),
        ("favoriteCategories", pa.list_(pa.string())),
        ("scores", pa.list_(pa.int64())),
        ("attributes", pa.map_(pa.string(), pa.string())),
        ("_sources", pa.list_(pa.string())),
        ("_lastModifiedAt", pa.timestamp("us")),
        ("_hasProfileRecord", pa.bool_()),
    ]
)

PRODUCT = pa.struct(
    [
        ("SKU", pa.string()),
        ("name", pa.string()),
        ("quantity", pa.int64()),
        ("priceTotal", pa.float64()),
    ]
)
VALUE = pa.struct([("value", pa.float64())])

EVENT_SCHEMA = pa.schema(
    [
        ("_profile_id", pa.string()),
        ("_id", pa.string()),
        ("timestamp", pa.timestamp("us")),
        ("eventType", pa.string()),
        (
            "commerce",
            pa.struct(
                [
                    (
                        "order",
                        pa.struct(
                            [
                                ("priceTotal", pa.float64()),
                                ("currencyCode", pa.string()),
                                ("purchaseID", pa.string()),
                            ]
                        ),
                    ),
                    ("purchases", VALUE),
                    ("productViews", VALUE),
                    ("productListAdds", VALUE),
                ]
            ),
        ),
        ("productListItems", pa.list_(PRODUCT)),
        (
            "web",
            pa.struct(
                [("webPageDetails", pa.struct([("name", pa.string()), ("URL", pa.string())]))]
            ),
        ),
        ("environment", pa.struct([("browserDetails", pa.struct([("name", pa.string())]))])),
        ("_ingestTime", pa.timestamp("us")),
    ]
)

MEMBERSHIP_SCHEMA = pa.schema(
    [
        ("_profile_id", pa.string()),
        ("segment_id", pa.string()),
        ("status", pa.string()),
        ("lastQualificationTime", pa.timestamp("us")),
    ]
)

#: Segment ids present in generated ``segmentMembership`` / the membership relation.
SEGMENT_IDS = ("seg-gold", "seg-churn", "seg-vip")

EVENT_TYPES = (
    "commerce.purchases",
    "commerce.productViews",
    "commerce.productListAdds",
    "web.webpagedetails.pageViews",
    "Commerce.Purchases",  # case variant: equals() is case-sensitive unless told otherwise
    "commerce.checkouts",
)
COUNTRIES = ("US", "us", "United States", "FR", "DE", " US", "", None)
CITIES = ("San Jose", "san jose", "Paris", "Berlin", "New York", None)
TIERS = ("gold", "Gold", "silver", "bronze", "platinum", None)
FIRST_NAMES = ("John", "john", "Jane", "JANE", "Élodie", "O'Brien", "Ann_a", "50%off", "", None)
LAST_NAMES = ("Smith", "smith", "Doe", "Müller", "de la Cruz", None)
CATEGORIES = ("outdoor", "Outdoor", "books", "electronics", "garden", "toys")
PRODUCTS = (("SKU-1", "Tent"), ("SKU-2", "tent"), ("SKU-3", "Sleeping Bag"), ("SKU-4", "Stove"), ("SKU-5", None))
PAGES = ("home", "Home", "checkout", "product/tent", None)
BROWSERS = ("Chrome", "chrome", "Firefox", "Safari", None)
PRICES = (0.0, 9.99, 19.99, 49.5, 50.0, 99.99, 100.0, 100.01, 250.25, -5.0, None)

# Offsets from AS_OF that sit just inside/outside the windows and calendar periods tests use.
_DAY = dt.timedelta(days=1)
_SECOND = dt.timedelta(seconds=1)
EDGE_OFFSETS = (
    dt.timedelta(0),
    -_SECOND,
    _SECOND,
    -7 * _DAY,
    -7 * _DAY - _SECOND,
    -7 * _DAY + _SECOND,
    -30 * _DAY,
    -30 * _DAY - _SECOND,
    -30 * _DAY + _SECOND,
    -_DAY,
    -3 * _DAY,
    -90 * _DAY,
    -400 * _DAY,
    2 * _DAY,
)
_MIDNIGHT = dt.datetime(2024, 6, 15, tzinfo=UTC)
EDGE_INSTANTS = (
    _MIDNIGHT,  # start of today
    _MIDNIGHT - dt.timedelta(microseconds=1),  # last instant of yesterday
    dt.datetime(2024, 6, 1, tzinfo=UTC),  # start of this month
    dt.datetime(2024, 5, 31, 23, 59, 59, tzinfo=UTC),  # end of last month
    dt.datetime(2024, 5, 1, tzinfo=UTC),  # start of last month
    dt.datetime(2024, 1, 1, tzinfo=UTC),  # start of this year
    dt.datetime(2023, 12, 31, 23, 59, 59, tzinfo=UTC),
    dt.datetime(2024, 6, 10, tzinfo=UTC),  # Monday of this (ISO) week
    dt.datetime(2024, 6, 9, 23, 59, 59, tzinfo=UTC),  # Sunday of last week
    dt.datetime(2024, 6, 16, tzinfo=UTC),  # tomorrow
    dt.datetime(2024, 7, 1, tzinfo=UTC),  # next month
)


@dataclass
class Dataset:
    """Generated profiles, events and membership, as dicts; ``*_table()`` gives the Arrow form."""

    profiles: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def __repr__(self) -> str:
        # Short, so a failing property test reports its example rather than a 100 kB dump of the data.
        return f"Dataset({len(self.profiles)} profiles, {len(self.events)} events)"

    def events_by_profile(self) -> dict[str, list[dict[str, Any]]]:
        """Events grouped by ``_profile_id`` (every profile present, possibly with no events)."""
        grouped: dict[str, list[dict[str, Any]]] = {p["_profile_id"]: [] for p in self.profiles}
        for event in self.events:
            grouped[event["_profile_id"]].append(event)
        return grouped

    def membership_rows(self) -> list[dict[str, Any]]:
        """The ``membership`` relation derived from each profile's ``segmentMembership.ups``."""
        rows = []
        for profile in self.profiles:
            ups = (profile.get("segmentMembership") or {}).get("ups") or {}
            for segment_id, entry in sorted(ups.items()):
                rows.append(
                    {
                        "_profile_id": profile["_profile_id"],
                        "segment_id": segment_id,
                        "status": entry.get("status"),
                        "lastQualificationTime": entry.get("lastQualificationTime"),
                    }
                )
        return rows

    def profiles_table(self) -> pa.Table:
        """Profiles as Arrow, in the merged profile store's layout."""
        return pa.Table.from_pylist([_naive(p) for p in self.profiles], schema=PROFILE_SCHEMA)

    def events_table(self) -> pa.Table:
        """Events as Arrow, sorted by (``_profile_id``, ``timestamp``) like events.parquet."""
        rows = sorted(self.events, key=lambda e: (e["_profile_id"], e["timestamp"]))
        return pa.Table.from_pylist([_naive(e) for e in rows], schema=EVENT_SCHEMA)

    def membership_table(self) -> pa.Table:
        """The ``membership`` relation as Arrow."""
        return pa.Table.from_pylist([_naive(r) for r in self.membership_rows()], schema=MEMBERSHIP_SCHEMA)

    def tables(self) -> dict[str, pa.Table]:
        """The relations a plan reads: ``profiles``, ``events`` and ``membership`` (the membership
        store's layout of :meth:`membership_table`, read through :func:`membership_relation`)."""
        return {
            "profiles": self.profiles_table(),
            "events": self.events_table(),
            "membership": relation_from_long_form(self.membership_table(), SEGMENT_IDS)[1],
        }


def membership_relation() -> BitsRelation:
    """How plans read the ``membership`` relation of :meth:`Dataset.tables`."""
    return relation_from_long_form(pa.Table.from_pylist([], schema=MEMBERSHIP_SCHEMA), SEGMENT_IDS)[0]


def generate(seed: int = 0, n_profiles: int = 200) -> Dataset:
    """Generate a dataset.

    Args:
        seed: Seed of the pseudo-random generator; the same seed gives the same data.
        n_profiles: Number of profiles (at least a handful of hand-picked edge profiles come first).

    Returns:
        The dataset.
    """
    rng = random.Random(seed)
    data = Dataset()
    for index in range(n_profiles):
        profile_id = f"crm:{index:05d}"
        data.profiles.append(_profile(rng, profile_id, index))
        data.events.extend(_events(rng, profile_id, index))
    return data


def _pick(rng: random.Random, values: tuple[Any, ...], missing: float = 0.0) -> Any:
    """A random value, or the sentinel ``_MISSING`` (key absent) with probability ``missing``."""
    return _MISSING if rng.random() < missing else rng.choice(values)


_MISSING = object()


def _put(target: dict[str, Any], key: str, value: Any) -> None:
    if value is not _MISSING:
        target[key] = value


def _profile(rng: random.Random, profile_id: str, index: int) -> dict[str, Any]:
    profile: dict[str, Any] = {"_profile_id": profile_id}
    if index % 17 == 3:
        # A profile made only of events: no attributes at all.
        profile["_hasProfileRecord"] = False
        return profile
    person: dict[str, Any] = {}
    name: dict[str, Any] = {}
    _put(name, "firstName", _pick(rng, FIRST_NAMES, 0.1))
    _put(name, "lastName", _pick(rng, LAST_NAMES, 0.1))
    if name or rng.random() < 0.5:
        person["name"] = name
    birth = _birth_date(rng)
    if birth is not None:
        person["birthDate"] = birth
        if rng.random() < 0.9:
            person["birthYear"] = birth.year
    _put(person, "gender", _pick(rng, ("male", "female", "not_specified"), 0.3))
    if person or rng.random() < 0.5:
        profile["person"] = person
    if rng.random() < 0.9:
        address: dict[str, Any] = {}
        _put(address, "country", _pick(rng, COUNTRIES, 0.1))
        _put(address, "countryCode", _pick(rng, ("US", "FR", "DE", None), 0.2))
        _put(address, "city", _pick(rng, CITIES, 0.1))
        _put(address, "postalCode", _pick(rng, ("95110", "75001", "10115", "9511", None), 0.2))
        profile["homeAddress"] = address
    if rng.random() < 0.75:
        loyalty: dict[str, Any] = {}
        _put(loyalty, "tier", _pick(rng, TIERS, 0.1))
        _put(loyalty, "points", _pick(rng, (0, 1, 99, 100, 101, 500, 1000, 5000, -1, None), 0.1))
        _put(loyalty, "lifetimeValue", _pick(rng, PRICES, 0.2))
        if rng.random() < 0.7:
            loyalty["joinDate"] = _instant(rng)
        profile["loyalty"] = loyalty
    if rng.random() < 0.8:
        user = (name.get("firstName") or "anon").lower().replace(" ", "")
        domain = rng.choice(("example.com", "Example.COM", "test.org", "mail.fr"))
        profile["personalEmail"] = {"address": f"{user}{index}@{domain}", "status": "active"}
    profile["identityMap"] = _identity_map(rng, profile_id, profile)
    ups = {}
    for segment_id in SEGMENT_IDS:
        if rng.random() < 0.4:
            status = rng.choice(("realized", "existing", "exited", "Realized"))
            ups[segment_id] = {"status": status, "lastQualificationTime": _instant(rng)}
    if ups or rng.random() < 0.5:
        profile["segmentMembership"] = {"ups": ups}
    if rng.random() < 0.8:
        size = rng.choice((0, 0, 1, 2, 3, 4))
        profile["favoriteCategories"] = [rng.choice(CATEGORIES) for _ in range(size)]
    if rng.random() < 0.8:
        size = rng.choice((0, 1, 2, 3, 5))
        profile["scores"] = [rng.choice((0, 1, 5, 10, 50, 100, -3)) for _ in range(size)]
    if rng.random() < 0.6:
        keys = rng.sample(("plan", "Plan", "region", "source"), rng.randint(0, 3))
        profile["attributes"] = {key: rng.choice(("pro", "free", "EU", "ads", "")) for key in keys}
    profile["_sources"] = ["ds-crm"]
    profile["_lastModifiedAt"] = _instant(rng)
    profile["_hasProfileRecord"] = True
    return profile


def _birth_date(rng: random.Random) -> dt.date | None:
    roll = rng.random()
    if roll < 0.15:
        return None
    if roll < 0.25:
        return dt.date(rng.choice((1988, 1996, 2000)), 2, 29)  # leap-day birthday
    if roll < 0.4:
        # Birthday today / this month / just around today: anniversaries and age boundaries.
        year = rng.choice((1970, 1990, 2006, 2010))
        return dt.date(year, 6, rng.choice((1, 14, 15, 16, 30)))
    return dt.date(rng.randint(1940, 2015), rng.randint(1, 12), rng.randint(1, 28))


def _identity_map(rng: random.Random, profile_id: str, profile: dict[str, Any]) -> dict[str, Any]:
    identities: dict[str, Any] = {"crm": [{"id": profile_id.split(":", 1)[1], "primary": True}]}
    email = profile.get("personalEmail", {}).get("address")
    if email is not None and rng.random() < 0.8:
        identities["email"] = [{"id": email, "primary": False}]
    if rng.random() < 0.5:
        ecids = [{"id": f"{rng.getrandbits(40):012x}", "primary": False} for _ in range(rng.randint(0, 2))]
        identities["ECID"] = ecids  # possibly an empty list
    return identities


def _instant(rng: random.Random) -> dt.datetime:
    roll = rng.random()
    if roll < 0.35:
        return AS_OF + rng.choice(EDGE_OFFSETS)
    if roll < 0.6:
        return rng.choice(EDGE_INSTANTS)
    # Whole seconds: engines keep microseconds, but round numbers keep failures readable.
    return AS_OF - dt.timedelta(seconds=rng.randint(-3 * 86400, 120 * 86400))


def _events(rng: random.Random, profile_id: str, index: int) -> list[dict[str, Any]]:
    count = 0 if index % 11 == 5 else rng.choice((0, 1, 2, 3, 4, 5, 6, 8, 12))
    return [_event(rng, profile_id, f"{profile_id}-e{n}") for n in range(count)]


def _event(rng: random.Random, profile_id: str, event_id: str) -> dict[str, Any]:
    event_type = rng.choice(EVENT_TYPES)
    timestamp = _instant(rng)
    event: dict[str, Any] = {"_profile_id": profile_id, "_id": event_id, "timestamp": timestamp}
    if rng.random() < 0.95:
        event["eventType"] = event_type
    commerce: dict[str, Any] = {}
    if "urchase" in event_type or "checkout" in event_type or rng.random() < 0.1:
        order: dict[str, Any] = {}
        _put(order, "priceTotal", _pick(rng, PRICES, 0.1))
        _put(order, "currencyCode", _pick(rng, ("USD", "usd", "EUR", None), 0.1))
        _put(order, "purchaseID", _pick(rng, ("P-1", "P-2", "P-3"), 0.2))
        commerce["order"] = order
        commerce["purchases"] = {"value": 1.0}
    if "productViews" in event_type:
        commerce["productViews"] = {"value": 1.0}
    if "productListAdds" in event_type:
        commerce["productListAdds"] = {"value": rng.choice((1.0, 2.0, None))}
    if commerce:
        event["commerce"] = commerce
    if event_type.lower().startswith("commerce") and rng.random() < 0.85:
        items = []
        for _ in range(rng.choice((0, 1, 1, 2, 3))):
            sku, name = rng.choice(PRODUCTS)
            item: dict[str, Any] = {"SKU": sku}
            _put(item, "name", name if name is not None else _MISSING)
            _put(item, "quantity", _pick(rng, (1, 2, 3, 0), 0.2))
            _put(item, "priceTotal", _pick(rng, PRICES, 0.2))
            items.append(item)
        event["productListItems"] = items
    if event_type.startswith("web") or rng.random() < 0.3:
        page: dict[str, Any] = {}
        _put(page, "name", _pick(rng, PAGES, 0.1))
        _put(page, "URL", _pick(rng, ("https://shop.example.com/", "https://shop.example.com/tent?x=1"), 0.3))
        event["web"] = {"webPageDetails": page}
    if rng.random() < 0.6:
        event["environment"] = {"browserDetails": {"name": rng.choice(BROWSERS)}}
    event["_ingestTime"] = timestamp + dt.timedelta(minutes=5)
    return event


def _naive(value: Any) -> Any:
    """Copy ``value`` with tz-aware datetimes made naive UTC, as the Parquet store holds them."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return {key: _naive(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_naive(item) for item in value]
    return value


# ------------------------------------------------------------------------------------------------
# the differential corpus

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "pql" / "corpus.pql"
_LABEL = re.compile(r"^\[(?P<id>[^\]]+)\]\s*(?P<text>.+)$")


@dataclass(frozen=True)
class CorpusEntry:
    """One corpus line: its segment id (the ``[label]`` or ``line-<n>``), text and line number."""

    segment_id: str
    text: str
    line: int


def load_corpus(path: Path = CORPUS) -> list[CorpusEntry]:
    """The corpus expressions, in file order."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        label = _LABEL.match(line)
        if label:
            entries.append(CorpusEntry(label["id"], label["text"], number))
        else:
            entries.append(CorpusEntry(f"line-{number}", line, number))
    return entries


def python_members(
    data: Dataset, segments: Sequence[tuple[str, Any]], as_of: dt.datetime = AS_OF
) -> dict[str, set[str]]:
    """Qualifying profile ids per segment, by the Python predicates, in dependency order.

    ``inSegment`` of a segment in ``segments`` reads this run's result for it (as the planner's
    plan does); other ids read the profile's ``segmentMembership.ups``.
    """
    from openseg.pql import ast
    from openseg.pql.to_python import compile_predicate

    nodes = dict(segments)
    members: dict[str, set[str]] = {}
    events = data.events_by_profile()
    pending = list(nodes)
    while pending:
        progressed = False
        for segment_id in list(pending):
            deps = {n.segment_id for n in nodes[segment_id].walk() if isinstance(n, ast.InSegment)} & set(nodes)
            if not deps <= set(members):
                continue
            predicate = compile_predicate(nodes[segment_id], as_of)
            qualified = set()
            for profile in data.profiles:
                view = profile
                if deps:
                    ups = dict((profile.get("segmentMembership") or {}).get("ups") or {})
                    for dep in deps:
                        if profile["_profile_id"] in members[dep]:
                            ups[dep] = {"status": "realized"}
                        else:
                            ups.pop(dep, None)
                    view = {**profile, "segmentMembership": {"ups": ups}}
                if predicate(view, events[profile["_profile_id"]]):
                    qualified.add(profile["_profile_id"])
            members[segment_id] = qualified
            pending.remove(segment_id)
            progressed = True
        if not progressed:
            raise ValueError(f"inSegment cycle among {pending}")
    return members
