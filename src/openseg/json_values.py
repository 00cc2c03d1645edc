"""Values read from Parquet or a query result, as JSON: one conversion for every API answer that shows data."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

__all__ = ["json_value"]


def json_value(value: Any) -> Any:
    """A result cell as JSON: dates and times as RFC 3339 text, decimals as numbers."""
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {k: json_value(v) for k, v in value.items()}
    if isinstance(value, list):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:  # a map
            return {str(k): json_value(v) for k, v in value}
        return [json_value(v) for v in value]
    return value
