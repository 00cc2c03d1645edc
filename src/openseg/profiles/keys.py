"""An identity's key (one module of its own, so that modules reading no store can use it)."""

from __future__ import annotations

#: AEP's guardrail: an identity graph links at most this many identities (``profiles/identity.py``).
MAX_GRAPH_IDENTITIES = 50


def identity_key(namespace: str, identity: str) -> str:
    """The key of an identity: namespaces compare case-insensitively, ids exactly."""
    return f"{namespace.lower()}:{identity}"
