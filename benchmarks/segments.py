"""The benchmark's segment definitions: a fixed suite of 10 and a seeded mix of 100, in PQL text.

Every segment is a *template* filled with parameters. PQL text is rendered from the template here;
the hand-written DuckDB SQL (``handwritten.py``) and the naive Python predicates (``naive.py``) are
written by hand per template and filled with the same parameters, so all three evaluate the same
question without sharing any code with openseg's compiler.

Time windows are relative (``occurs <= N days before now``), so every evaluator resolves them against
the data set's ``as_of`` (``manifest.json``), never against the clock.
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from benchmarks import vocab

_IDS = uuid.UUID("6f0c7f7e-3a0e-4f57-9d7c-0b3c0b9a5e11")


class Template(StrEnum):
    """The shapes of benchmark segments."""

    COUNTRY_IS = "country_is"
    TIER_IN_BORN_BETWEEN = "tier_in_born_between"
    POINTS_BETWEEN = "points_between"
    NAME_OR_EMAIL = "name_or_email"
    NESTED = "nested"
    MISSING_FIELDS = "missing_fields"
    EVENT_COUNT = "event_count"
    SPEND_OVER = "spend_over"
    DID_NOT = "did_not"
    SEQUENCE = "sequence"
    PAGE_VISITS = "page_visits"
    BOUGHT_PRODUCT = "bought_product"
    BROWSER_VISITS = "browser_visits"
    IN_SEGMENTS = "in_segments"


#: Profile attributes a null-check segment may test.
NULLABLE_PATHS = (
    "person.birthDate",
    "person.gender",
    "homeAddress.postalCode",
    "homeAddress.state",
    "loyalty.tier",
    "personalEmail.address",
)


def segment_id(key: str) -> str:
    """The stable segment id (a UUID) the benchmark uses for a segment key."""
    return str(uuid.uuid5(_IDS, key))


@dataclass(frozen=True)
class Segment:
    """One benchmark segment: a template and its parameters.

    Attributes:
        key: Short stable name (``bench-01``, ``mix-042``); ``inSegment`` parameters name other keys.
        name: What it selects, in words.
        template: Its shape.
        params: The template's parameters (strings, ints, dates, Decimals, tuples of strings).
    """

    key: str
    name: str
    template: Template
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The default segment id: a UUID derived from the key."""
        return segment_id(self.key)

    @property
    def references(self) -> tuple[str, ...]:
        """Keys of the segments this one is defined on (``inSegment``)."""
        if self.template is not Template.IN_SEGMENTS:
            return ()
        return tuple(self.params["all_of"]) + tuple(self.params["none_of"])

    def pql(self, ids: Mapping[str, str] | None = None) -> str:
        """The segment as PQL text.

        Args:
            ids: Segment id per referenced key, for ``inSegment`` (default: ``segment_id(key)``).
        """

        def resolve(key: str) -> str:
            return ids[key] if ids is not None else segment_id(key)

        return _RENDER[self.template](self.params, resolve)


def _text(value: str) -> str:
    """A PQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _texts(values: Sequence[str]) -> str:
    return "[" + ", ".join(_text(v) for v in values) + "]"


def _date(value: dt.date) -> str:
    return f'date("{value.isoformat()}")'


def _events(condition: str, days: int) -> str:
    return f"xEvent[{condition} and timestamp occurs <= {days} days before now]"


def _count(event_type: str, days: int) -> str:
    return _events(f"eventType = {_text(event_type)}", days) + ".count()"


_Params = dict[str, Any]
_Resolve = Callable[[str], str]

_RENDER: dict[Template, Callable[[_Params, _Resolve], str]] = {
    Template.COUNTRY_IS: lambda p, _: f"homeAddress.country = {_text(p['country'])}",
    Template.TIER_IN_BORN_BETWEEN: lambda p, _: (
        f"loyalty.tier in {_texts(p['tiers'])} and person.birthDate >= {_date(p['born_from'])} "
        f"and person.birthDate < {_date(p['born_before'])}"
    ),
    Template.POINTS_BETWEEN: lambda p, _: f"loyalty.points >= {p['low']} and loyalty.points <= {p['high']}",
    Template.NAME_OR_EMAIL: lambda p, _: (
        f"person.name.lastName.startsWith({_text(p['prefix'])}) "
        f"or personalEmail.address.contains({_text(p['fragment'])})"
    ),
    Template.NESTED: lambda p, _: (
        f"(homeAddress.country = {_text(p['country'])} and (loyalty.tier = {_text(p['tier'])} "
        f"or loyalty.points > {p['points']})) or (homeAddress.country in {_texts(p['countries'])} "
        f"and not (person.gender = {_text(p['gender'])}))"
    ),
    Template.MISSING_FIELDS: lambda p, _: (
        f"({p['missing'][0]}.isNull() or {p['missing'][1]}.isNull()) and {p['present']}.isNotNull()"
    ),
    Template.EVENT_COUNT: lambda p, _: f"{_count(p['event_type'], p['days'])} >= {p['at_least']}",
    Template.SPEND_OVER: lambda p, _: (
        _events(_text_eq("eventType", "commerce.purchases"), p["days"])
        + f".sum(commerce.order.priceTotal) > {p['amount']}"
    ),
    Template.DID_NOT: lambda p, _: (
        f"{_count(p['did'], p['days'])} > 0 and {_count(p['did_not'], p['days'])} = 0"
    ),
    Template.SEQUENCE: lambda p, _: (
        f"chain(xEvent, timestamp, [C0: WHAT(eventType = {_text(p['first'])}) "
        f"WHEN(<= {p['days']} days before now), C1: WHAT(eventType = {_text(p['then'])}) "
        f"WHEN(<= {p['hours']} hours after C0)])"
    ),
    Template.PAGE_VISITS: lambda p, _: (
        _events(_text_eq("web.webPageDetails.name", p["page"]), p["days"]) + f".count() >= {p['at_least']}"
    ),
    Template.BOUGHT_PRODUCT: lambda p, _: (
        _events(
            f"{_text_eq('eventType', 'commerce.purchases')} and "
            f"productListItems.exists(name.equals({_text(p['product'])}, false))",
            p["days"],
        )
        + ".count() > 0"
    ),
    Template.BROWSER_VISITS: lambda p, _: (
        _events(_text_eq("environment.browserDetails.name", p["browser"]), p["days"])
        + f".count() >= {p['at_least']}"
    ),
    Template.IN_SEGMENTS: lambda p, resolve: " and ".join(
        [f"inSegment({_text(resolve(k))})" for k in p["all_of"]]
        + [f"not inSegment({_text(resolve(k))})" for k in p["none_of"]]
    ),
}


def _text_eq(path: str, value: str) -> str:
    return f"{path} = {_text(value)}"


PURCHASE = "commerce.purchases"
VIEW = "commerce.productViews"
ADD = "commerce.productListAdds"

#: The fixed suite: one segment per kind of condition users write.
SUITE: tuple[Segment, ...] = (
    Segment("bench-01", "US residents (attribute equality)", Template.COUNTRY_IS, {"country": "US"}),
    Segment(
        "bench-02",
        "Gold or platinum members born in the 1980s (in-list, range)",
        Template.TIER_IN_BORN_BETWEEN,
        {"tiers": ("gold", "platinum"), "born_from": dt.date(1980, 1, 1), "born_before": dt.date(1990, 1, 1)},
    ),
    Segment(
        "bench-03",
        "Mc- surnames or Yahoo addresses (prefix, contains)",
        Template.NAME_OR_EMAIL,
        {"prefix": "Mc", "fragment": "@yahoo."},
    ),
    Segment(
        "bench-04",
        "Loyal US customers, or German/French non-male ones (nested boolean)",
        Template.NESTED,
        {"country": "US", "tier": "gold", "points": 20000, "countries": ("DE", "FR"), "gender": "male"},
    ),
    Segment(
        "bench-05",
        "Incomplete contact data (null checks)",
        Template.MISSING_FIELDS,
        {"missing": ("person.birthDate", "homeAddress.postalCode"), "present": "personalEmail.address"},
    ),
    Segment(
        "bench-06",
        "Two product views in 30 days (event count in a window)",
        Template.EVENT_COUNT,
        {"event_type": VIEW, "days": 30, "at_least": 2},
    ),
    Segment(
        "bench-07",
        "Spent over 500 in 90 days (event sum over a window)",
        Template.SPEND_OVER,
        {"days": 90, "amount": Decimal(500)},
    ),
    Segment(
        "bench-08",
        "Added to cart but did not buy in 14 days (did X but not Y)",
        Template.DID_NOT,
        {"did": ADD, "did_not": PURCHASE, "days": 14},
    ),
    Segment(
        "bench-09",
        "Viewed, then bought within 24 hours, in 30 days (sequence)",
        Template.SEQUENCE,
        {"first": VIEW, "then": PURCHASE, "days": 30, "hours": 24},
    ),
    Segment(
        "bench-10",
        "Big spenders outside the US (segment of segments)",
        Template.IN_SEGMENTS,
        {"all_of": ("bench-07",), "none_of": ("bench-01",)},
    ),
)

_WEIGHTS = {
    Template.COUNTRY_IS: 4,
    Template.TIER_IN_BORN_BETWEEN: 3,
    Template.POINTS_BETWEEN: 3,
    Template.NAME_OR_EMAIL: 3,
    Template.NESTED: 3,
    Template.MISSING_FIELDS: 2,
    Template.EVENT_COUNT: 12,
    Template.SPEND_OVER: 6,
    Template.DID_NOT: 6,
    Template.SEQUENCE: 5,
    Template.PAGE_VISITS: 5,
    Template.BOUGHT_PRODUCT: 4,
    Template.BROWSER_VISITS: 3,
    Template.IN_SEGMENTS: 6,
}
_DAYS = (7, 14, 30, 60, 90, 180)
_DID_NOT_PAIRS = (
    (ADD, PURCHASE),
    ("commerce.checkouts", PURCHASE),
    (VIEW, ADD),
    ("message.opened", "message.clicked"),
    (ADD, "commerce.checkouts"),
)
_SEQUENCE_PAIRS = (
    (VIEW, ADD),
    (VIEW, PURCHASE),
    (ADD, "commerce.checkouts"),
    ("commerce.checkouts", PURCHASE),
    ("message.clicked", PURCHASE),
    ("web.webpagedetails.pageViews", VIEW),
)


def _draw(template: Template, rng: random.Random, earlier: Sequence[str]) -> dict[str, Any]:
    """Random parameters for a template (``earlier``: keys an ``inSegment`` may refer to)."""
    countries = [c for c, _, _ in vocab.COUNTRIES]
    match template:
        case Template.COUNTRY_IS:
            return {"country": rng.choice(countries)}
        case Template.TIER_IN_BORN_BETWEEN:
            start = rng.randrange(1950, 1995, 5)
            return {
                "tiers": tuple(sorted(rng.sample(vocab.LOYALTY_TIERS, rng.randint(1, 2)))),
                "born_from": dt.date(start, 1, 1),
                "born_before": dt.date(start + rng.choice((5, 10)), 1, 1),
            }
        case Template.POINTS_BETWEEN:
            low = rng.choice((0, 500, 1000, 2000, 5000, 10000))
            return {"low": low, "high": low + rng.choice((1000, 5000, 20000))}
        case Template.NAME_OR_EMAIL:
            return {
                "prefix": rng.choice(("Mc", "S", "Ma", "O'", "Sch", "Ta", "Ro")),
                "fragment": rng.choice(("@yahoo.", "@gmail.com", ".de", "@icloud.", "mar", "son")),
            }
        case Template.NESTED:
            return {
                "country": rng.choice(countries),
                "tier": rng.choice(vocab.LOYALTY_TIERS),
                "points": rng.choice((5000, 10000, 20000)),
                "countries": tuple(rng.sample(countries, 2)),
                "gender": rng.choice(("male", "female")),
            }
        case Template.MISSING_FIELDS:
            first, second, present = rng.sample(NULLABLE_PATHS, 3)
            return {"missing": (first, second), "present": present}
        case Template.EVENT_COUNT:
            return {
                "event_type": rng.choice(vocab.EVENT_TYPES),
                "days": rng.choice(_DAYS),
                "at_least": rng.randint(1, 4),
            }
        case Template.SPEND_OVER:
            return {
                "days": rng.choice((30, 60, 90, 180)),
                "amount": Decimal(rng.choice(("100", "250", "499.99", "1000"))),
            }
        case Template.DID_NOT:
            did, did_not = rng.choice(_DID_NOT_PAIRS)
            return {"did": did, "did_not": did_not, "days": rng.choice((7, 14, 30))}
        case Template.SEQUENCE:
            first, then = rng.choice(_SEQUENCE_PAIRS)
            return {
                "first": first,
                "then": then,
                "days": rng.choice((7, 14, 30, 60)),
                "hours": rng.choice((1, 24, 72)),
            }
        case Template.PAGE_VISITS:
            pages = [n for n, _, _ in vocab.SITE_PAGES] + [vocab.PRODUCT_PAGE[0], vocab.CHECKOUT_PAGE[0]]
            return {"page": rng.choice(pages), "days": rng.choice(_DAYS), "at_least": rng.randint(1, 3)}
        case Template.BOUGHT_PRODUCT:
            product = rng.choice(vocab.PRODUCTS[:40])[1]
            # Lower-cased half the time: equals(..., false) is case-insensitive.
            return {
                "product": product.lower() if rng.random() < 0.5 else product,
                "days": rng.choice((30, 60, 90, 180)),
            }
        case Template.BROWSER_VISITS:
            return {
                "browser": rng.choice(vocab.BROWSERS),
                "days": rng.choice((7, 14, 30)),
                "at_least": rng.randint(1, 3),
            }
        case Template.IN_SEGMENTS:
            chosen = rng.sample(list(earlier), rng.randint(2, 3) if len(earlier) >= 3 else 1)
            none_of = chosen[2:] if len(chosen) == 3 else []
            return {"all_of": tuple(chosen[:2]), "none_of": tuple(none_of)}
    raise ValueError(f"no parameters for template {template}")


def mix(count: int = 100, seed: int = 7) -> tuple[Segment, ...]:
    """A seeded mix of segments of every template, in the proportions of a typical sandbox.

    ``inSegment`` segments refer only to earlier segments that are not themselves ``inSegment`` ones,
    so the mix evaluates in two layers, in list order.
    """
    rng = random.Random(seed)
    templates = list(_WEIGHTS)
    weights = [_WEIGHTS[t] for t in templates]
    segments: list[Segment] = []
    plain: list[str] = []
    for number in range(count):
        template = rng.choices(templates, weights)[0]
        while template is Template.IN_SEGMENTS and not plain:
            template = rng.choices(templates, weights)[0]
        key = f"mix-{number:03d}"
        segments.append(Segment(key, f"{template.value} #{number}", template, _draw(template, rng, plain)))
        if template is not Template.IN_SEGMENTS:
            plain.append(key)
    return tuple(segments)


def evaluation_layers(segments: Sequence[Segment]) -> list[list[Segment]]:
    """Segments grouped so each group refers only to segments in earlier groups.

    Raises:
        ValueError: A segment refers to a key that is not in ``segments``, or references form a cycle.
    """
    by_key = {s.key: s for s in segments}
    depth: dict[str, int] = {}

    def depth_of(key: str, visiting: frozenset[str]) -> int:
        if key not in by_key:
            raise ValueError(f"segment {key} is referred to but not part of the evaluation")
        if key in visiting:
            raise ValueError(f"segment {key} refers to itself through inSegment")
        if key not in depth:
            refs = by_key[key].references
            depth[key] = 1 + max((depth_of(r, visiting | {key}) for r in refs), default=-1)
        return depth[key]

    layers: list[list[Segment]] = []
    for segment in segments:
        level = depth_of(segment.key, frozenset())
        while len(layers) <= level:
            layers.append([])
        layers[level].append(segment)
    return layers


def with_dependencies(segment: Segment, segments: Sequence[Segment]) -> list[Segment]:
    """The segment preceded by every segment it refers to, directly or not, in ``segments`` order."""
    by_key = {s.key: s for s in segments}
    needed: set[str] = set()
    pending = [segment.key]
    while pending:
        key = pending.pop()
        if key not in needed:
            needed.add(key)
            pending.extend(by_key[key].references)
    return [s for s in segments if s.key in needed]
