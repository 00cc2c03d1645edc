"""Vectorised builders of the Arrow arrays XDM records are made of.

The generator never builds per-row Python objects: each column is made from numpy index arrays and
small vocabularies with Arrow kernels, which keeps 10M profiles / 100M events within minutes and a
bounded amount of memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: ``identityMap`` exactly as the lake and the merged profile store hold it (docs/architecture.md).
IDENTITY = pa.struct([("id", pa.string()), ("primary", pa.bool_())])
IDENTITY_MAP = pa.map_(pa.string(), pa.list_(IDENTITY))
#: Money: exact to the cent, so sums do not depend on evaluation order (engine-pitfalls.md).
MONEY = pa.decimal128(12, 2)


def pick(vocabulary: Sequence[str | None], indices: np.ndarray) -> pa.Array:
    """The vocabulary entries at ``indices``, as an Arrow string array."""
    return pa.array(list(vocabulary), type=pa.string()).take(pa.array(indices))


def choose(rng: np.random.Generator, weights: Sequence[float], size: int) -> np.ndarray:
    """``size`` indices drawn with the given (normalised) weights."""
    p = np.asarray(weights, dtype=np.float64)
    return rng.choice(len(p), size=size, p=p / p.sum())


def digits(values: np.ndarray, width: int) -> pa.Array:
    """Non-negative integers as zero-padded decimal strings of ``width`` characters."""
    return pc.utf8_lpad(pc.cast(pa.array(values), pa.string()), width=width, padding="0")


def concat(*parts: pa.Array | str) -> pa.Array:
    """Element-wise string concatenation of arrays and constant strings (null if any part is null)."""
    return pc.binary_join_element_wise(*parts, "")


def with_nulls(array: pa.Array, null: np.ndarray) -> pa.Array:
    """``array`` with the positions where ``null`` is true set to null."""
    if not null.any():
        return array
    return pc.if_else(pa.array(null), pa.scalar(None, type=array.type), array)


def validity(null: np.ndarray | None) -> pa.Array | None:
    """A StructArray ``mask`` (true = null) from a numpy boolean array, or None when nothing is null."""
    if null is None or not null.any():
        return None
    return pa.array(null)


def money(cents: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Exact decimal amounts (``decimal128(12, 2)``) from integer cents.

    The decimal's 128-bit little-endian unscaled value is the cents themselves, so the buffer is built
    directly from the int64 values and their sign extension; no float ever touches the amounts.
    """
    cents = np.ascontiguousarray(cents, dtype=np.int64)
    unscaled = np.empty((len(cents), 2), dtype=np.int64)
    unscaled[:, 0] = cents
    unscaled[:, 1] = cents >> 63
    bitmap = None
    if null is not None and null.any():
        bitmap = pa.py_buffer(np.packbits(~null, bitorder="little"))
    return pa.Array.from_buffers(MONEY, len(cents), [bitmap, pa.py_buffer(unscaled.tobytes())])


def timestamps_us(epoch_ms: np.ndarray, tz: str | None = None) -> pa.Array:
    """Timestamps with microsecond unit from epoch milliseconds (naive UTC unless ``tz``)."""
    return pa.array(epoch_ms.astype(np.int64) * 1000, type=pa.timestamp("us", tz=tz))


def struct(fields: dict[str, pa.Array], null: np.ndarray | None = None) -> pa.StructArray:
    """A struct array from named child arrays, null where ``null`` is true."""
    return pa.StructArray.from_arrays(list(fields.values()), names=list(fields), mask=validity(null))


def identity_map(
    namespaces: Sequence[str], ids: Sequence[pa.Array], present: np.ndarray, primary: np.ndarray
) -> pa.MapArray:
    """An ``identityMap`` column: per row, one key per present namespace holding one identity.

    Args:
        namespaces: The namespace codes, in the order keys appear in each map.
        ids: Per namespace, the identity value of every row (ignored where not present).
        present: ``(rows, namespaces)`` booleans: the row has an identity in that namespace.
        primary: ``(rows, namespaces)`` booleans: that identity is the record's primary one.

    Returns:
        A ``map<string, list<struct<id, primary>>>`` array with no null maps.
    """
    rows = present.shape[0]
    row, slot = np.nonzero(present)  # row-major: entries come out grouped by row, in namespace order
    counts = present.sum(axis=1)
    offsets = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(counts, out=offsets[1:])
    keys = pick(namespaces, slot)
    all_ids = pa.concat_arrays(
        [pa.array(i, type=pa.string()) if not isinstance(i, pa.Array) else i for i in ids]
    )
    values = all_ids.take(pa.array(slot.astype(np.int64) * rows + row))
    entries = pa.StructArray.from_arrays([values, pa.array(primary[row, slot])], fields=list(IDENTITY))
    one_each = pa.array(np.arange(len(slot) + 1, dtype=np.int32))
    items = pa.ListArray.from_arrays(one_each, entries, type=pa.list_(IDENTITY))
    return pa.MapArray.from_arrays(pa.array(offsets), keys, items, type=IDENTITY_MAP)


def list_of(offsets: np.ndarray, values: pa.Array, null: np.ndarray) -> pa.ListArray:
    """A list array from int32 offsets and flat values, null where ``null`` is true."""
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values, mask=validity(null))
