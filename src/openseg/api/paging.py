"""Query parameters shared by list endpoints."""

from __future__ import annotations

import re
from collections.abc import Sequence

from openseg.errors import BadRequest
from openseg.request_fields import MAX_INT

_INTEGER = re.compile(r"[+-]?[0-9]+")


def parse_int(value: str | None, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """A paging number (``start``, ``limit``, ``page``): ASCII digits, between ``minimum`` and ``maximum``."""
    if value is None or value == "":
        return default
    if not _INTEGER.fullmatch(value):  # int() would also take '٣', '1_000' and ' 5 '
        raise BadRequest(f"query parameter '{name}' must be an integer, not '{value[:40]}'", field=name)
    digits = value.lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_INT)):  # beyond any bound, and int() refuses more than 4,300 digits
        number = -(MAX_INT + 1) if value.startswith("-") else MAX_INT + 1
    else:
        number = int(value)
    if number < minimum:
        raise BadRequest(f"query parameter '{name}' must be at least {minimum}", field=name)
    if number > maximum:
        raise BadRequest(f"query parameter '{name}' must be at most {maximum}", field=name)
    return number


def children_page(children: Sequence[object], *, total: int, start: int, limit: int, path: str,
                  extra_query: str = "") -> dict[str, object]:
    """AEP's ``children`` paging (segment jobs, schedules, merge policies): ``_links.next`` is an object
    whose ``href`` is empty on the last page."""
    following = start + len(children)
    has_next = following < total
    href = f"{path}?start={following}&limit={limit}{extra_query}" if has_next else ""
    return {
        "_page": {"totalCount": total, "pageSize": len(children), "next": str(following) if has_next else ""},
        "children": children,
        "_links": {"next": {"href": href}},
    }
