"""``overlay.reach`` links identities as a build's replay does (``identity.split_oversized``), guardrail included:
over generated graphs, the profile the overlay lays streamed records over is the one the next build makes of the
built records followed by the streamed ones."""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from openseg.profiles.identity import split_oversized
from openseg.profiles.keys import identity_key
from openseg.profiles.overlay import Part, reach, record_anchor


@dataclass(frozen=True)
class Entry:
    record: dict[str, Any]
    dataset_id: str = "people"
    kind: str = "profile"
    received_ms: int = 0
    problems: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Message:
    seq: int
    entry: Entry


@dataclass
class Log:
    messages: list[Message] = field(default_factory=list)

    def carrying(self, sandbox_id: str, keys: Collection[str], after: int,
                 through: int | None = None) -> Sequence[Message]:
        wanted = set(keys)
        return [m for m in self.messages if after < m.seq and {identity_key(*p) for p in pairs(m.entry.record)} & wanted]


def pairs(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(ns, e["id"]) for ns, entries in record["identityMap"].items() for e in entries]


def generated(rng: random.Random, pool: list[str], count: int) -> list[dict[str, Any]]:
    """Records of 1 to 6 identities of ``pool``, one of them primary (or none)."""
    records = []
    for _ in range(count):
        chosen = rng.sample(pool, rng.randint(1, 6))
        primary = rng.choice([*chosen, None])
        records.append({"identityMap": {"ecid": [{"id": i, "primary": i == primary} for i in chosen]}})
    return records


def replayed(records: list[dict[str, Any]]) -> tuple[dict[str, str], set[str]]:
    """The build's graphs of ``records`` (each identity's graph root key) and the live roots (anchoring a record)."""
    keys = sorted({identity_key(*p) for r in records for p in pairs(r)})
    number = {key: n for n, key in enumerate(keys)}
    anchors = [number[record_anchor(r) or ""] for r in records]
    roots = split_oversized(anchors, [sorted(number[identity_key(*p)] for p in pairs(r)) for r in records])
    graph = {key: keys[roots[number[key]]] for key in keys}
    return graph, {graph[keys[a]] for a in anchors}


@pytest.mark.parametrize("seed", range(40))
def test_reach_makes_the_profile_the_next_build_makes(seed: int) -> None:
    rng = random.Random(seed)
    pool = [f"X{n:03d}" for n in range(rng.choice([30, 80, 140]))]
    built, streamed = generated(rng, pool, rng.randint(5, 60)), generated(rng, pool, rng.randint(1, 25))
    before, live_before = replayed(built)
    members: dict[str, list[tuple[str, str]]] = {}
    for key, root in before.items():
        members.setdefault(root, []).append(("ecid", key.partition(":")[2]))

    def part_of(namespace: str, identity: str) -> Part | None:
        root = before.get(identity_key(namespace, identity))
        return Part(root, tuple(members[root])) if root in live_before else None

    log = Log([Message(seq, Entry(record)) for seq, record in enumerate(streamed, 1)])
    after, live_after = replayed(built + streamed)
    for identity in rng.sample(pool, 10):
        found = reach(log, "s", [("ecid", identity)], 0, part_of=part_of, is_source=lambda _: True)
        key = identity_key("ecid", identity)
        root = after.get(key, key)
        assert bool(found.parts or found.messages) == (root in live_after)
        if root not in live_after:
            continue
        assert found.profile_id == root
        assert {identity_key(*p) for p in found.identities} == {k for k, r in after.items() if r == root}
        assert [m.seq for m in found.messages] == [
            seq for seq, record in enumerate(streamed, 1) if after[record_anchor(record) or ""] == root]
        assert {p.profile_id for p in found.parts} == {r for r in live_before if after[r] == root}
