"""An identity's key (one module of its own, so that modules reading no store can use it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: AEP's guardrail: an identity graph links at most this many identities (``profiles/identity.py``).
MAX_GRAPH_IDENTITIES = 50


def identity_key(namespace: str, identity: str) -> str:
    """The key of an identity: namespaces compare case-insensitively, ids exactly."""
    return f"{namespace.lower()}:{identity}"


def identity_pairs(row: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every ``(namespace, id)`` of a profile row's ``identityMap``, as stored, sorted by key (under ``pdg`` the
    identities of the profile's graph: a build writes the map from them)."""
    pairs = [(str(ns), str(item["id"])) for ns, items in (row.get("identityMap") or {}).items() for item in items or []]
    return sorted(pairs, key=lambda pair: identity_key(*pair))
