"""Synthetic people: their identities, XDM profile attributes, and the fragments they are ingested as.

A *person* is one merged profile. Most persons are ingested as one profile record carrying all their
identities; about one in seven persons with an e-mail address is ingested as two fragments (a CRM
record with the person, e-mail and loyalty data, and a web record with the home address) that share
only the e-mail identity, so the merged store can only be built by stitching.

Identity values are built so that a person's ``_profile_id`` (the smallest ``namespace:id`` of their
identities, docs/architecture.md) grows with the person's index inside each of two groups: persons
with a CRM id (``CRMID:...``) sort before all others (``ECID:...``). Processing persons in that order
lets every chunk be written already in ``_profile_id`` order, with no global sort.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from benchmarks import vocab
from benchmarks.arrays import (
    choose,
    concat,
    digits,
    identity_map,
    pick,
    struct,
    with_nulls,
)

NAMESPACES = ("ECID", "email", "phone", "CRMID")
_ECID, _EMAIL, _PHONE, _CRMID = range(4)
_EPOCH = dt.date(1970, 1, 1)


@dataclass(frozen=True)
class People:
    """One chunk of persons, in ``_profile_id`` order.

    Attributes:
        profile_id: ``_profile_id`` of each person.
        ids: Per namespace of ``NAMESPACES``, the identity value (null where absent).
        present: ``(persons, namespaces)``: which identities each person has.
        split: The person is ingested as two fragments.
        country: Index into ``vocab.COUNTRIES`` (null home address counts as its nominal country).
        browser: Index into ``vocab.BROWSERS`` of the person's usual browser.
        attributes: The XDM profile columns ``person``, ``homeAddress``, ``personalEmail``, ``loyalty``.
    """

    profile_id: pa.Array
    ids: tuple[pa.Array, ...]
    present: np.ndarray
    split: np.ndarray
    country: np.ndarray
    browser: np.ndarray
    attributes: dict[str, pa.Array]

    def __len__(self) -> int:
        return len(self.profile_id)


def crm_flags(count: int, seed: int) -> np.ndarray:
    """Whether each person has a CRM id: drawn for everybody up front, since it decides the order."""
    return np.random.default_rng([seed, 0]).random(count) < 0.35


def processing_order(has_crm: np.ndarray) -> np.ndarray:
    """Person indices in ``_profile_id`` order: persons with a CRM id first, each group ascending."""
    return np.concatenate([np.flatnonzero(has_crm), np.flatnonzero(~has_crm)])


def make_people(
    persons: np.ndarray, has_crm: np.ndarray, rng: np.random.Generator, as_of: dt.datetime
) -> People:
    """Generates the persons with the given global indices.

    Args:
        persons: Global person indices, in processing order.
        has_crm: Whether each of them has a CRM id.
        rng: The chunk's random generator.
        as_of: The evaluation time the data is built around (no date after it).
    """
    n = len(persons)
    first = rng.integers(0, len(vocab.FIRST_NAMES), n)
    last = rng.integers(0, len(vocab.LAST_NAMES), n)
    has_email = rng.random(n) < 0.85
    has_phone = ~has_crm & (rng.random(n) < 0.45)  # the third identity is a phone or a CRM id

    # Identity values embed the person index so they are unique and sort in processing order.
    ecid = concat(
        digits(persons, 12), digits(rng.integers(0, 10**13, n), 13), digits(rng.integers(0, 10**13, n), 13)
    )
    local_part = pc.utf8_lower(concat(pick(vocab.FIRST_NAMES, first), ".", pick(vocab.LAST_NAMES, last)))
    local_part = pc.replace_substring(local_part, "'", "")
    domain = pick(vocab.EMAIL_DOMAINS, choose(rng, vocab.EMAIL_DOMAIN_WEIGHTS, n))
    email = with_nulls(concat(local_part, pc.cast(pa.array(persons), pa.string()), "@", domain), ~has_email)
    phone = with_nulls(concat("+1", digits(2_010_000_000 + persons, 10)), ~has_phone)
    crm = with_nulls(concat("C", digits(persons, 9)), ~has_crm)
    present = np.column_stack([np.ones(n, dtype=bool), has_email, has_phone, has_crm])
    profile_id = pc.if_else(pa.array(has_crm), concat("CRMID:", crm), concat("ECID:", ecid))

    country_weights = [w for _, _, w in vocab.COUNTRIES]
    country = choose(rng, country_weights, n)
    attributes = {
        "person": _person(rng, first, last),
        "homeAddress": _home_address(rng, country),
        "personalEmail": struct({"address": email}, null=~has_email),
        "loyalty": _loyalty(rng, n, as_of),
    }
    split = has_email & (rng.random(n) < 0.15)
    browser = choose(rng, vocab.BROWSER_WEIGHTS, n)
    return People(profile_id, (ecid, email, phone, crm), present, split, country, browser, attributes)


def _person(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> pa.StructArray:
    n = len(first)
    born_from = (dt.date(1945, 1, 1) - _EPOCH).days
    born_to = (dt.date(2006, 12, 31) - _EPOCH).days
    birth = pa.array(rng.integers(born_from, born_to + 1, n).astype(np.int32), type=pa.date32())
    name = struct(
        {
            "firstName": with_nulls(pick(vocab.FIRST_NAMES, first), rng.random(n) < 0.01),
            "lastName": with_nulls(pick(vocab.LAST_NAMES, last), rng.random(n) < 0.01),
        }
    )
    return struct(
        {
            "name": name,
            "birthDate": with_nulls(birth, rng.random(n) < 0.08),
            "gender": pick(vocab.GENDERS, choose(rng, vocab.GENDER_WEIGHTS, n)),
        }
    )


def _home_address(rng: np.random.Generator, country: np.ndarray) -> pa.StructArray:
    n = len(country)
    codes = [code for code, _, _ in vocab.COUNTRIES]
    city_country = np.array([codes.index(c) for c, _, _, _ in vocab.CITIES])
    first_city = np.searchsorted(city_country, np.arange(len(codes)))  # CITIES is grouped by country
    city_count = np.bincount(city_country, minlength=len(codes))
    city = first_city[country] + (rng.random(n) * city_count[country]).astype(np.int64)
    postal = concat(pick([p for _, _, _, p in vocab.CITIES], city), digits(rng.integers(0, 100, n), 2))
    return struct(
        {
            "country": pick(codes, country),
            "city": pick([c for _, c, _, _ in vocab.CITIES], city),
            "postalCode": with_nulls(postal, rng.random(n) < 0.05),
            "state": pick([s for _, _, s, _ in vocab.CITIES], city),
        }
    )


def _loyalty(rng: np.random.Generator, n: int, as_of: dt.datetime) -> pa.StructArray:
    tier = choose(rng, vocab.LOYALTY_TIER_WEIGHTS, n)
    mean = np.asarray(vocab.LOYALTY_POINTS_MEAN, dtype=np.float64)[tier]
    points = np.round(mean * rng.lognormal(-0.18, 0.6, n)).astype(np.int64)
    joined_from = (dt.date(2015, 1, 1) - _EPOCH).days
    joined_to = (as_of.date() - _EPOCH).days - 1
    # XDM's loyalty.joinDate is a date-time: midnight UTC of the day joined.
    days = rng.integers(joined_from, joined_to + 1, n).astype(np.int64)
    joined = pa.array(days * 86_400_000_000, type=pa.timestamp("us", tz="UTC"))
    return struct(
        {"tier": pick(vocab.LOYALTY_TIERS, tier), "points": pa.array(points), "joinDate": joined},
        null=rng.random(n) < 0.4,  # non-members have no loyalty object at all
    )


def _primary_of(present: np.ndarray, preference: tuple[int, ...]) -> np.ndarray:
    """The primary flag matrix: the first present namespace of ``preference`` is primary."""
    primary = np.zeros_like(present)
    chosen = np.zeros(len(present), dtype=bool)
    for slot in preference:
        take = present[:, slot] & ~chosen
        primary[take, slot] = True
        chosen |= take
    return primary


def merged_identity_map(people: People) -> pa.MapArray:
    """The merged ``identityMap``: every identity; the one ``_profile_id`` names is primary."""
    return identity_map(NAMESPACES, people.ids, people.present, _primary_of(people.present, (_CRMID, _ECID)))


def profiles_table(people: People, as_of: dt.datetime, source: str) -> pa.Table:
    """The merged profile store rows for these persons (``plain/profiles.parquet``), with the columns the
    build adds (provenance and the primary-identity namespace, worked out as the build does)."""
    n = len(people)
    sources = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), pa.repeat(source, n))
    modified = pa.array(np.full(n, int(as_of.timestamp() * 1_000_000)), type=pa.timestamp("us"))
    return _with_primary_namespace(pa.table(
        {
            "_profile_id": people.profile_id,
            **people.attributes,
            "identityMap": merged_identity_map(people),
            "_sources": sources,
            "_lastModifiedAt": modified,
            "_hasProfileRecord": pa.array(np.ones(n, dtype=bool)),
        }
    ))


def _with_primary_namespace(table: pa.Table) -> pa.Table:
    from openseg.profiles.store import primary_namespace
    from openseg.xdm.schema import PRIMARY_NAMESPACE

    with duckdb.connect() as con:
        con.register("people", table)
        namespace = primary_namespace().sql("duckdb")
        added = con.sql(f'SELECT {namespace} AS "{PRIMARY_NAMESPACE}" FROM people').to_arrow_table()
    return table.append_column(PRIMARY_NAMESPACE, added.column(0))


def identities_table(people: People) -> pa.Table:
    """``namespace, id, _profile_id`` for every identity (``plain/identities.parquet``)."""
    row, slot = np.nonzero(people.present)
    all_ids = pa.concat_arrays(list(people.ids))
    return pa.table(
        {
            "namespace": pick(NAMESPACES, slot),
            "id": all_ids.take(pa.array(slot.astype(np.int64) * len(people) + row)),
            "_profile_id": people.profile_id.take(pa.array(row)),
        }
    )


def fragments_table(people: People) -> pa.Table:
    """The profile records a user would ingest: XDM with ``identityMap``, no ``_profile_id``.

    Whole persons come first, then the CRM fragments of split persons (e-mail, phone and CRM id;
    person, e-mail and loyalty data), then their web fragments (ECID and e-mail; home address).
    """
    present, split = people.present, people.split
    whole = np.flatnonzero(~split)
    parts = np.flatnonzero(split)
    crm_present = present[parts].copy()
    crm_present[:, _ECID] = False
    web_present = np.zeros_like(present[parts])
    web_present[:, _ECID] = True
    web_present[:, _EMAIL] = True

    def records(
        rows: np.ndarray, ids_present: np.ndarray, primary: tuple[int, ...], keep: tuple[str, ...]
    ) -> pa.Table:
        index = pa.array(rows)
        columns: dict[str, pa.Array] = {
            "identityMap": identity_map(
                NAMESPACES,
                [i.take(index) for i in people.ids],
                ids_present,
                _primary_of(ids_present, primary),
            ),
        }
        for name, column in people.attributes.items():
            columns[name] = column.take(index) if name in keep else pa.nulls(len(rows), column.type)
        return pa.table(columns)

    every = tuple(people.attributes)
    return pa.concat_tables(
        [
            records(whole, present[whole], (_CRMID, _ECID), every),
            records(parts, crm_present, (_CRMID, _EMAIL), ("person", "personalEmail", "loyalty")),
            records(parts, web_present, (_ECID,), ("homeAddress",)),
        ]
    )
