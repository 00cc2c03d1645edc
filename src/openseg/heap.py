"""The garbage collector in openseg's long-running processes: what start-up made is left out of collections.

CPython's full collection walks every object the collector tracks, and the imports of a process that serves
(FastAPI, pydantic, pyarrow, pandas, DuckDB, sqlglot and openseg's own modules) leave some 200,000 of them:
functions, classes, module dicts. A full collection of those took 32 ms here on an idle core, and 100-200 ms
while streaming at 1M profiles (``benchmarks.streaming``, with ``gc.callbacks`` timing each collection: up to
134 ms in the streamer, 199 ms in an edge process, 105 ms in the API), every one of them a pause of every
request and micro-batch in the process.

:func:`freeze_start_up` moves what is alive once a process has started into the collector's permanent
generation, which collections skip (``gc.freeze``): a full collection then walks only what the process made
since (2 ms for 100,000 lists). What start-up made lives as long as the process, so nothing is kept that would
have been freed.
"""

from __future__ import annotations

import gc


def freeze_start_up() -> None:
    """Collect once, then leave every object alive now out of later collections; call it where a process has
    imported and built what it keeps for its life and before it serves."""
    gc.collect()
    gc.freeze()
