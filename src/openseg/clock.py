"""Time and identifiers. Services take ``now`` from here so tests can inject a clock."""

from __future__ import annotations

import secrets
import time
import uuid
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the epoch, as AEP's ``creationTime``/``updateTime``."""
    return time.time_ns() // 1_000_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def ms_to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def rfc3339(value: datetime) -> str:
    """Format as RFC 3339 with a ``Z`` suffix (UTC)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_uuid() -> str:
    return str(uuid.uuid4())


def new_hex_id(length: int = 24) -> str:
    """AEP-style hexadecimal ids: datasets use 24 characters, batches 32."""
    return secrets.token_hex(length // 2)
