"""Synthetic ExperienceEvents: browsing sessions that walk a purchase funnel.

Each person gets a skewed number of events (mean about ten: a gamma-Poisson mix, so some have none
and a few have dozens) over the 180 days before ``as_of``. Events come in sessions a few minutes
apart; a session starts with an arrival (page view, product view, app launch, message) and goes on
down the funnel (product views, cart adds, checkouts, purchases), so sequences such as "viewed, then
bought within a day" occur naturally. Commerce events carry ``productListItems``; checkouts and
purchases carry ``commerce.order.priceTotal``, the exact sum of their items.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks import vocab
from benchmarks.arrays import (
    MONEY,
    choose,
    concat,
    digits,
    identity_map,
    list_of,
    money,
    pick,
    struct,
    timestamps_us,
)
from benchmarks.population import People

WINDOW_DAYS = 180
_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 24 * _MS_PER_HOUR
_PURCHASE, _VIEW, _ADD, _CHECKOUT, _PAGE, _FORM, _LAUNCH, _OPENED, _CLICKED, _REMOVAL = range(10)
_COMMERCE = (_PURCHASE, _VIEW, _ADD, _CHECKOUT, _REMOVAL)
_ORDERS = (_PURCHASE, _CHECKOUT)
_MESSAGES = (_OPENED, _CLICKED)
_NO_BROWSER = (_LAUNCH, _OPENED, _CLICKED)

PRODUCT_ITEM = pa.struct(
    [("SKU", pa.string()), ("name", pa.string()), ("quantity", pa.int64()), ("priceTotal", MONEY)]
)


def _sessions(rng: np.random.Generator, counts: np.ndarray, as_of_ms: int) -> tuple[np.ndarray, np.ndarray]:
    """Event times (epoch ms) and each event's position inside its session, grouped by person."""
    total = int(counts.sum())
    first_of_person = np.cumsum(counts) - counts
    owner = np.repeat(np.arange(len(counts)), counts)
    position = np.arange(total) - first_of_person[owner]
    new_session = (position == 0) | (rng.random(total) < 0.35)
    session = np.cumsum(new_session) - 1
    session_first = np.flatnonzero(new_session)
    # Sessions start at least 12 hours before as_of, so even a long session ends before it.
    start = as_of_ms - rng.integers(12 * _MS_PER_HOUR, WINDOW_DAYS * _MS_PER_DAY, len(session_first))
    gaps = rng.integers(20_000, 600_000, total)
    gaps[new_session] = 0
    elapsed = np.cumsum(gaps)
    offset = elapsed - elapsed[session_first][session]
    return start[session] + offset, np.arange(total) - session_first[session]


def _product_items(rng: np.random.Generator, kind: np.ndarray) -> tuple[pa.ListArray, np.ndarray, np.ndarray]:
    """``productListItems`` per event, each order's total in cents, and each event's first SKU index."""
    total = len(kind)
    count = np.zeros(total, dtype=np.int64)
    count[np.isin(kind, (_VIEW, _ADD, _REMOVAL))] = 1
    orders = np.isin(kind, _ORDERS)
    count[orders] = rng.integers(1, 4, int(orders.sum()))
    offsets = np.zeros(total + 1, dtype=np.int64)
    np.cumsum(count, out=offsets[1:])
    items = int(offsets[-1])
    popularity = 1.0 / np.arange(1, len(vocab.PRODUCTS) + 1) ** 0.9  # a long tail of products
    product = choose(rng, popularity, items)
    quantity = 1 + (rng.random(items) < 0.2).astype(np.int64)
    unit = np.array([price for _, _, price in vocab.PRODUCTS], dtype=np.int64)
    cents = unit[product] * quantity
    item_event = np.repeat(np.arange(total), count)
    order_cents = np.bincount(item_event, weights=cents, minlength=total).astype(np.int64)
    values = pa.StructArray.from_arrays(
        [
            pick([s for s, _, _ in vocab.PRODUCTS], product),
            pick([n for _, n, _ in vocab.PRODUCTS], product),
            pa.array(quantity),
            money(cents),
        ],
        fields=list(PRODUCT_ITEM),
    )
    first_product = np.zeros(total, dtype=np.int64)
    has_items = count > 0
    first_product[has_items] = product[offsets[:-1][has_items]]
    return list_of(offsets, values, null=~has_items), order_cents, first_product


def _web(rng: np.random.Generator, kind: np.ndarray, first_product: np.ndarray) -> pa.StructArray:
    """``web.webPageDetails`` per event: the page the event happened on (null for app and messages)."""
    pages = [(name, path) for name, path, _ in vocab.SITE_PAGES] + list(vocab.FORM_PAGES)
    fixed = {
        _VIEW: vocab.PRODUCT_PAGE,
        _ADD: vocab.CART_PAGE,
        _REMOVAL: vocab.CART_PAGE,
        _CHECKOUT: vocab.CHECKOUT_PAGE,
        _PURCHASE: vocab.ORDER_PAGE,
    }
    page = choose(rng, [w for _, _, w in vocab.SITE_PAGES], len(kind))
    forms = kind == _FORM
    page[forms] = len(vocab.SITE_PAGES) + rng.integers(0, len(vocab.FORM_PAGES), int(forms.sum()))
    for event_kind, fixed_page in fixed.items():
        page[kind == event_kind] = len(pages)
        pages.append(fixed_page)
    name = pick([n for n, _ in pages], page)
    url = concat(vocab.SITE, pick([p for _, p in pages], page))
    sku = pc.utf8_lower(pick([s for s, _, _ in vocab.PRODUCTS], first_product))
    url = pc.if_else(pa.array(kind == _VIEW), concat(url, sku), url)
    no_page = np.isin(kind, (_LAUNCH, _OPENED, _CLICKED))
    return struct({"webPageDetails": struct({"name": name, "URL": url})}, null=no_page)


def make_events(people: People, rng: np.random.Generator, as_of: dt.datetime, first_number: int) -> pa.Table:
    """Generates the events of one chunk of persons, sorted by person, then time.

    Args:
        people: The chunk's persons, in ``_profile_id`` order.
        rng: The chunk's random generator.
        as_of: Every event happens in the 180 days before this time.
        first_number: The running number of the chunk's first event (makes ``_id`` unique).

    Returns:
        The events with ``_profile_id`` and every XDM event column, in the merged store's layout
        (``timestamp`` naive UTC), without ``_ingestTime``.
    """
    as_of_ms = int(as_of.timestamp() * 1000)
    counts = rng.poisson(rng.gamma(2.0, 5.0, len(people)))
    times, in_session = _sessions(rng, counts, as_of_ms)
    total = len(times)
    kind = np.where(
        in_session == 0,
        choose(rng, vocab.FIRST_EVENT_WEIGHTS, total),
        choose(rng, vocab.LATER_EVENT_WEIGHTS, total),
    )
    owner = np.repeat(np.arange(len(people)), counts)
    order = np.lexsort((times, owner))
    owner, times, kind = owner[order], times[order], kind[order]

    items, order_cents, first_product = _product_items(rng, kind)
    is_order = np.isin(kind, _ORDERS)
    currency = pick([c for _, c, _ in vocab.COUNTRIES], people.country[owner])
    commerce = struct(
        {"order": struct({"priceTotal": money(order_cents), "currencyCode": currency})}, null=~is_order
    )

    usual = people.browser[owner]
    other = choose(rng, vocab.BROWSER_WEIGHTS, total)
    browser = np.where(rng.random(total) < 0.1, other, usual)
    environment = struct(
        {"browserDetails": struct({"name": pick(vocab.BROWSERS, browser)})}, null=np.isin(kind, _NO_BROWSER)
    )

    owner_index = pa.array(owner)
    ecid, email = people.ids[0].take(owner_index), people.ids[1].take(owner_index)
    by_email = np.isin(kind, _MESSAGES) & people.present[owner, 1]  # messages are keyed by e-mail
    present = np.column_stack([~by_email, by_email])
    identities = identity_map(("ECID", "email"), [ecid, email], present, present)

    return pa.table(
        {
            "_profile_id": people.profile_id.take(owner_index),
            "_id": concat("ev-", digits(first_number + np.arange(total), 12)),
            "timestamp": timestamps_us(times),
            "eventType": pick(vocab.EVENT_TYPES, kind),
            "identityMap": identities,
            "commerce": commerce,
            "productListItems": items,
            "web": _web(rng, kind, first_product),
            "environment": environment,
        }
    )
