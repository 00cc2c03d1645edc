"""Real-Time Customer Profile core: identity stitching, merge policies and the merged profile store.

Build a store with :func:`build_profile_store`; read it with :func:`get_profile`,
:func:`get_profile_identities`, :func:`resolve_profile_id` and :func:`get_events`.
"""

from openseg.profiles.build import BuildStats, build_profile_store
from openseg.profiles.identity import OversizedGraph
from openseg.profiles.keys import MAX_GRAPH_IDENTITIES, identity_key
from openseg.profiles.lookup import (
    InvalidCursorError,
    events_cursor,
    get_events,
    get_profile,
    get_profile_identities,
    resolve_profile_id,
)
from openseg.profiles.merge_policy import MergePolicyError, MergePolicySpec
from openseg.profiles.sources import SchemaConflictError, SourceFile
from openseg.profiles.store import StoreNotFoundError, read_manifest, read_schema, resolve_store

__all__ = [
    "MAX_GRAPH_IDENTITIES",
    "BuildStats",
    "InvalidCursorError",
    "MergePolicyError",
    "MergePolicySpec",
    "OversizedGraph",
    "SchemaConflictError",
    "SourceFile",
    "StoreNotFoundError",
    "build_profile_store",
    "events_cursor",
    "get_events",
    "get_profile",
    "get_profile_identities",
    "identity_key",
    "read_manifest",
    "read_schema",
    "resolve_profile_id",
    "resolve_store",
]
