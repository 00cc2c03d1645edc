"""Value semantics of the Python backend, mirroring what the SQL engines do with the same data."""

from __future__ import annotations

import datetime as dt
import functools
import math
import operator
import re
import string
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from openseg.pql import _time, ast, regex_dialect

IN_STATUSES = frozenset({"realized", "existing"})
_SCALE = Decimal("0.000001")  # DECIMAL(38, 6), as the SQL backend sums


def is_true(value: Any) -> bool:
    """Two-valued truth: only a real ``True`` holds (missing values are false)."""
    return value is True


def get_path(value: Any, segments: Sequence[str]) -> Any:
    """Follow field names (or map keys) through nested dicts; missing anywhere gives None.

    Through an array, the rest of the path is read on each item: a list of the items' values (what the
    SQL backend computes with ``map``, see ``_arrays``).
    """
    for index, segment in enumerate(segments):
        if type(value) is dict:  # profiles and events are plain dicts: one check, not an ABC's (a fifth of a call)
            value = value.get(segment)
            continue
        if isinstance(value, list | tuple):
            return [get_path(item, segments[index:]) for item in value]
        if not isinstance(value, Mapping):
            return None
        value = value.get(segment)
    return value


def instant_or_none(value: Any) -> dt.datetime | None:
    """A date/datetime as a UTC instant (dates at midnight); anything else is None."""
    return _time.as_instant(value) if isinstance(value, dt.date) else None


def to_decimal(value: Any) -> Decimal | None:
    """A number as the DECIMAL(38, 6) the SQL backend sums (None for non-numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)).quantize(_SCALE, rounding=ROUND_HALF_UP)
    if isinstance(value, Decimal):
        return value.quantize(_SCALE, rounding=ROUND_HALF_UP)
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Bring two values to one comparable type as SQL does, or None when they cannot compare."""
    if _number(left) and _number(right):
        if isinstance(left, Decimal) and isinstance(right, float):
            return float(left), right
        if isinstance(right, Decimal) and isinstance(left, float):
            return left, float(right)
        return left, right
    if isinstance(left, dt.date) and isinstance(right, dt.date):
        if isinstance(left, dt.datetime) or isinstance(right, dt.datetime):
            return _time.as_instant(left), _time.as_instant(right)
        return left, right
    if type(left) is type(right) and isinstance(left, str | bool):
        return left, right
    return None


def _same_item(left: Any, right: Any) -> bool:
    if left is None or right is None:
        return left is None and right is None
    return compare(ast.CompareOp.EQ, left, right)


#: The comparisons of two values of one plain type (text with text, whole numbers with whole numbers): what
#: :func:`compare` does with them, without its conversions.
_PLAIN_TYPES = frozenset({str, int})
_PLAIN_OPERATORS = {ast.CompareOp.EQ: operator.eq, ast.CompareOp.NE: operator.ne, ast.CompareOp.LT: operator.lt,
                    ast.CompareOp.LE: operator.le, ast.CompareOp.GT: operator.gt, ast.CompareOp.GE: operator.ge}


def compare(op: ast.CompareOp, left: Any, right: Any) -> bool:
    """``left op right``; false when either is missing or they do not compare."""
    kind = type(left)
    if kind is type(right) and kind in _PLAIN_TYPES:  # most comparisons a definition makes (eventType = "...")
        return bool(_PLAIN_OPERATORS[op](left, right))
    if left is None or right is None:
        return False
    if isinstance(left, list | tuple) and isinstance(right, list | tuple):
        # Arrays compare as DuckDB and Spark compare them: same length, pairwise equal, and a null item
        # equal to a null item. The checker allows only = and != on arrays.
        if op not in (ast.CompareOp.EQ, ast.CompareOp.NE):
            return False
        same = len(left) == len(right) and all(_same_item(a, b) for a, b in zip(left, right, strict=True))
        return same if op is ast.CompareOp.EQ else not same
    pair = _comparable(left, right)
    if pair is None:
        return False
    a, b = pair
    if op is ast.CompareOp.EQ:
        return bool(a == b)
    if op is ast.CompareOp.NE:
        return bool(a != b)
    if op is ast.CompareOp.LT:
        return bool(a < b)
    if op is ast.CompareOp.LE:
        return bool(a <= b)
    if op is ast.CompareOp.GT:
        return bool(a > b)
    return bool(a >= b)


def arithmetic(op: ast.ArithOp, left: Any, right: Any) -> Any:
    """``left op right``; missing operands or division by zero give None; ``/`` is floating point."""
    if not (_number(left) and _number(right)):
        return None
    if op is ast.ArithOp.POW:
        return power(float(left), float(right))
    if isinstance(left, Decimal) != isinstance(right, Decimal) and (isinstance(left, float) or isinstance(right, float)):
        left, right = float(left), float(right)
    if op is ast.ArithOp.DIV:
        return None if right == 0 else float(left) / float(right)
    if op is ast.ArithOp.MOD:
        if right == 0:
            return None
        # SQL's remainder takes the dividend's sign (C fmod), unlike Python's %.
        remainder = abs(left) % abs(right)
        return -remainder if left < 0 else remainder
    if op is ast.ArithOp.ADD:
        return left + right
    if op is ast.ArithOp.SUB:
        return left - right
    return left * right


def power(base: float, exponent: float) -> float | None:
    """``base ^ exponent`` as the SQL engines compute it, missing where it is not a real number."""
    if (base == 0 and exponent < 0) or (base < 0 and not exponent.is_integer()):
        return None
    try:
        return math.pow(base, exponent)
    except OverflowError:
        # IEEE 754 (DuckDB, Spark) overflows to infinity, negative for a negative base and an odd power.
        odd = exponent.is_integer() and int(exponent) % 2 == 1
        return -math.inf if base < 0 and odd else math.inf


def round_half_away(value: Any) -> Any:
    """ROUND as DuckDB and Spark do it for DOUBLE and DECIMAL: halves away from zero."""
    if not _number(value):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and not math.isfinite(value):
        return value
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def aggregate_values(kind: ast.AggregateKind, values: Sequence[Any], count: int | None = None) -> Any:
    """count/sum/average/min/max of values as the SQL backend computes them.

    ``count`` counts items (``count`` given: the number of items the values came from); the others
    skip missing values; ``sum`` of nothing is 0, ``average``/``min``/``max`` of nothing are missing.
    """
    if kind is ast.AggregateKind.COUNT:
        return len(values) if count is None else count
    present = [v for v in values if v is not None]
    if kind in (ast.AggregateKind.MIN, ast.AggregateKind.MAX):
        if not present:
            return None
        try:
            comparable = [_time.as_instant(v) if isinstance(v, dt.date) else v for v in present]
            return min(comparable) if kind is ast.AggregateKind.MIN else max(comparable)
        except TypeError:
            return None
    decimals = [d for d in (to_decimal(v) for v in present) if d is not None]
    total = sum(decimals, Decimal(0))
    if kind is ast.AggregateKind.SUM:
        return total
    return float(total) / len(decimals) if decimals else None


_REGEX_SPECIAL = frozenset(string.punctuation)


@functools.lru_cache(maxsize=256)
def like_regex(pattern: str) -> re.Pattern[str]:
    """A ``like`` pattern as a regex to ``fullmatch`` (``%`` any run, ``_`` one character)."""
    parts = []
    for char in pattern:
        if char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char) if char in _REGEX_SPECIAL else char)
    return re.compile("".join(parts), re.DOTALL)


@functools.lru_cache(maxsize=256)
def regex(pattern: str) -> re.Pattern[str] | None:
    """A compiled user regular expression (None when Python cannot read it), in PQL's regex dialect."""
    try:
        return regex_dialect.compile_python(pattern)
    except re.error:
        return None


def to_text(value: Any) -> str | None:
    """A value as text the way the SQL engines CAST it to VARCHAR."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return _time.as_instant(value).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, float):
        return repr(value)
    return str(value)
