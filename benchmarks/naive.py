"""The naive evaluator: load the plain Parquet into Python dicts and test each profile in a loop.

This is the obvious implementation openseg must beat by two orders of magnitude (issue 8, P3): read
every profile and every event into dicts, group the events per profile, then run small hand-written
predicates (one per template, below; not openseg's compiler) over each profile. Loading is part of
the measured time. ``--sample N`` evaluates only the first ``N`` profiles (and their events) and
extrapolates the time linearly to the whole data set.

Usage: ``python -m benchmarks.naive DATA_DIR [--sample 100000]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from benchmarks.generate import Manifest
from benchmarks.segments import SUITE, Segment, Template, evaluation_layers

Record = dict[str, Any]
_BATCH_ROWS = 65_536


@dataclass(frozen=True)
class NaiveResult:
    """Counts of a naive run and its time, extrapolated when only a sample was evaluated."""

    counts: dict[str, int]
    profiles_evaluated: int
    profiles_total: int
    seconds: float

    @property
    def sampled(self) -> bool:
        """Only part of the profiles were evaluated."""
        return self.profiles_evaluated < self.profiles_total

    @property
    def extrapolated_seconds(self) -> float:
        """The time scaled linearly to all profiles."""
        return self.seconds * self.profiles_total / max(self.profiles_evaluated, 1)


def load(data_dir: Path, limit: int | None = None) -> tuple[list[Record], dict[str, list[Record]]]:
    """Reads profiles (the first ``limit``, or all) and their events, grouped per ``_profile_id``."""
    manifest = Manifest.load(data_dir)
    profiles: list[Record] = []
    for batch in pq.ParquetFile(data_dir / manifest.plain_profiles).iter_batches(batch_size=_BATCH_ROWS):
        profiles.extend(batch.to_pylist())
        if limit is not None and len(profiles) >= limit:
            del profiles[limit:]
            break
    last_id = profiles[-1]["_profile_id"] if profiles else ""
    events: dict[str, list[Record]] = defaultdict(list)
    for batch in pq.ParquetFile(data_dir / manifest.plain_events).iter_batches(batch_size=_BATCH_ROWS):
        rows = batch.to_pylist()
        for event in rows:
            if event["_profile_id"] <= last_id:
                events[event["_profile_id"]].append(event)
        if limit is not None and rows and rows[-1]["_profile_id"] > last_id:
            break  # events are sorted by _profile_id: the sample's events are all read
    return profiles, events


def _get(record: Record | None, *path: str) -> Any:
    for key in path:
        if record is None:
            return None
        record = record.get(key)
    return record


def _in_window(event: Record, as_of: dt.datetime, days: int) -> bool:
    return as_of - dt.timedelta(days=days) <= event["timestamp"] <= as_of


def _count(events: list[Record], as_of: dt.datetime, days: int, test: Callable[[Record], bool]) -> int:
    return sum(1 for e in events if _in_window(e, as_of, days) and test(e))


def _sequence(events: list[Record], as_of: dt.datetime, p: dict[str, Any]) -> bool:
    within = dt.timedelta(hours=p["hours"])
    firsts = [
        e["timestamp"] for e in events if e["eventType"] == p["first"] and _in_window(e, as_of, p["days"])
    ]
    thens = [e["timestamp"] for e in events if e["eventType"] == p["then"] and e["timestamp"] <= as_of]
    return any(t0 < t1 <= t0 + within for t0 in firsts for t1 in thens)


def _bought(event: Record, product: str) -> bool:
    if event["eventType"] != "commerce.purchases":
        return False
    names = (item.get("name") for item in event["productListItems"] or ())
    return any(name is not None and name.lower() == product.lower() for name in names)


def _spend(events: list[Record], as_of: dt.datetime, days: int) -> Any:
    return sum(
        _get(e, "commerce", "order", "priceTotal") or 0
        for e in events
        if e["eventType"] == "commerce.purchases" and _in_window(e, as_of, days)
    )


def _path(profile: Record, dotted: str) -> Any:
    return _get(profile, *dotted.split("."))


def holds(
    segment: Segment, profile: Record, events: list[Record], as_of: dt.datetime, members: dict[str, bool]
) -> bool:
    """Whether a profile is in a segment (PQL's two-valued logic: a missing value compares false)."""
    p = segment.params
    match segment.template:
        case Template.COUNTRY_IS:
            return _get(profile, "homeAddress", "country") == p["country"]
        case Template.TIER_IN_BORN_BETWEEN:
            born = _get(profile, "person", "birthDate")
            return (
                _get(profile, "loyalty", "tier") in p["tiers"]
                and born is not None
                and p["born_from"] <= born < p["born_before"]
            )
        case Template.POINTS_BETWEEN:
            points = _get(profile, "loyalty", "points")
            return points is not None and p["low"] <= points <= p["high"]
        case Template.NAME_OR_EMAIL:
            last = _get(profile, "person", "name", "lastName")
            email = _get(profile, "personalEmail", "address")
            return (last is not None and last.startswith(p["prefix"])) or (
                email is not None and p["fragment"] in email
            )
        case Template.NESTED:
            country = _get(profile, "homeAddress", "country")
            points = _get(profile, "loyalty", "points")
            loyal = _get(profile, "loyalty", "tier") == p["tier"] or (
                points is not None and points > p["points"]
            )
            # PQL's `not (gender = g)` holds when gender is missing, as Python's != does for None.
            return (country == p["country"] and loyal) or (
                country in p["countries"] and _get(profile, "person", "gender") != p["gender"]
            )
        case Template.MISSING_FIELDS:
            first, second = p["missing"]
            return (_path(profile, first) is None or _path(profile, second) is None) and (
                _path(profile, p["present"]) is not None
            )
        case Template.EVENT_COUNT:
            return (
                _count(events, as_of, p["days"], lambda e: e["eventType"] == p["event_type"]) >= p["at_least"]
            )
        case Template.SPEND_OVER:
            return bool(_spend(events, as_of, p["days"]) > p["amount"])
        case Template.DID_NOT:
            return (
                _count(events, as_of, p["days"], lambda e: e["eventType"] == p["did"]) > 0
                and _count(events, as_of, p["days"], lambda e: e["eventType"] == p["did_not"]) == 0
            )
        case Template.SEQUENCE:
            return _sequence(events, as_of, p)
        case Template.PAGE_VISITS:
            page = p["page"]
            return (
                _count(events, as_of, p["days"], lambda e: _get(e, "web", "webPageDetails", "name") == page)
                >= p["at_least"]
            )
        case Template.BOUGHT_PRODUCT:
            return _count(events, as_of, p["days"], lambda e: _bought(e, p["product"])) > 0
        case Template.BROWSER_VISITS:
            browser = p["browser"]
            return (
                _count(
                    events,
                    as_of,
                    p["days"],
                    lambda e: _get(e, "environment", "browserDetails", "name") == browser,
                )
                >= p["at_least"]
            )
        case Template.IN_SEGMENTS:
            return all(members[k] for k in p["all_of"]) and not any(members[k] for k in p["none_of"])
    raise ValueError(f"no naive predicate for template {segment.template}")


def _memberships(
    profiles: list[Record], events: dict[str, list[Record]], segments: Sequence[Segment], as_of: dt.datetime
) -> Iterator[tuple[str, dict[str, bool]]]:
    """Each profile's id and its membership in every segment (referenced segments first)."""
    ordered = [s for layer in evaluation_layers(segments) for s in layer]
    for profile in profiles:
        own = events.get(profile["_profile_id"], [])
        members: dict[str, bool] = {}
        for segment in ordered:
            members[segment.key] = holds(segment, profile, own, as_of, members)
        yield profile["_profile_id"], members


def evaluate(
    profiles: list[Record], events: dict[str, list[Record]], segments: Sequence[Segment], as_of: dt.datetime
) -> dict[str, int]:
    """Member counts per segment key, testing every profile against every segment in turn."""
    counts = {s.key: 0 for s in segments}
    for _, members in _memberships(profiles, events, segments, as_of):
        for key, member in members.items():
            counts[key] += member
    return counts


def members(
    profiles: list[Record], events: dict[str, list[Record]], segments: Sequence[Segment], as_of: dt.datetime
) -> dict[str, set[str]]:
    """The ``_profile_id`` of every member of each segment (for cross-checks)."""
    found: dict[str, set[str]] = {s.key: set() for s in segments}
    for profile_id, memberships in _memberships(profiles, events, segments, as_of):
        for key, member in memberships.items():
            if member:
                found[key].add(profile_id)
    return found


def run_naive(data_dir: Path, segments: Sequence[Segment], sample: int | None = None) -> NaiveResult:
    """Loads and evaluates (a sample of) the data set, timing both.

    Args:
        data_dir: A generated data directory.
        segments: The segments to evaluate.
        sample: Evaluate only the first ``sample`` profiles; None for all.
    """
    manifest = Manifest.load(data_dir)
    started = time.perf_counter()
    profiles, events = load(data_dir, sample)
    counts = evaluate(profiles, events, segments, manifest.as_of_time)
    seconds = time.perf_counter() - started
    return NaiveResult(counts, len(profiles), manifest.profiles, seconds)


def main(argv: list[str] | None = None) -> None:
    """Command line entry point: evaluates the 10-segment suite and prints counts and time."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.naive", description=__doc__.split("\n")[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--sample", type=int, default=None, help="evaluate only the first N profiles")
    args = parser.parse_args(argv)
    result = run_naive(args.data_dir, SUITE, args.sample)
    for key, count in result.counts.items():
        print(f"{key}\t{count}")
    note = f" (extrapolated from {result.profiles_evaluated}: {result.extrapolated_seconds:.1f} s)"
    print(
        f"{result.profiles_evaluated} profiles in {result.seconds:.1f} s" + (note if result.sampled else "")
    )


if __name__ == "__main__":
    main()
