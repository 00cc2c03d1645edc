"""Query parameters shared by list endpoints."""

from __future__ import annotations

from collections.abc import Sequence

from openseg.errors import BadRequest


def parse_int(value: str | None, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError as exc:
        raise BadRequest(f"query parameter '{name}' must be an integer, not '{value}'", field=name) from exc
    if number < minimum:
        raise BadRequest(f"query parameter '{name}' must be at least {minimum}", field=name)
    if maximum is not None and number > maximum:
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
