"""The union schema as ingested: standard XDM plus the fields of every successful batch of the sandbox's
profile-enabled datasets, so a field is usable in a definition as soon as the batch bringing it succeeds.

The batches' fields are read from their Parquet footers (a few KB per file, cached: the files of a
successful batch never change), not from the last profile-store build, which lags until a job refreshes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import pyarrow as pa

from openseg import lake_files
from openseg.profiles.sources import SourceFile, unreadable_source
from openseg.xdm.schema import Schema


def union_schema(sources: Sequence[SourceFile]) -> Schema:
    """Standard XDM with the fields of ``sources`` (files of successful batches, profiles and events).

    Args:
        sources: The lake files of the sandbox's profile-enabled datasets, in ingest order.

    Returns:
        The schema the PQL checker validates definitions against.
    """
    profiles: list[pa.Schema] = []
    events: list[pa.Schema] = []
    for source in sources:
        try:
            # An object store lake's file is written once under its key (a privacy delete rewrites it with the
            # same schema), so its footer is kept by key alone: no round trip per file per call.
            modified = 0 if lake_files.is_remote(source.path) else lake_files.stat(source.path)[1]
            schema = _footer_schema(source.path, modified)
        except FileNotFoundError:  # its dataset was deleted since the catalog was read
            continue
        except (pa.ArrowInvalid, OSError) as unreadable:
            raise unreadable_source(source, unreadable) from unreadable
        (events if source.kind == "event" else profiles).append(schema)
    return Schema.from_arrow_files(profiles, events)


@lru_cache(maxsize=65_536)
def _footer_schema(path: str, modified: int) -> pa.Schema:
    return lake_files.read_schema(path).remove_metadata()
