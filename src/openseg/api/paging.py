"""Query parameters shared by list endpoints: declared types for ``/openapi.json``, read as AEP clients send them.

``AsciiInteger`` reads a paging number (``start``, ``limit``, ``page``) in ASCII digits and ``Flag`` a
boolean; a declared parameter of the wrong form is a 400 naming it (``api/validation.py``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError, PydanticUseDefault

from openseg.errors import BadRequest
from openseg.request_fields import MAX_INT

_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def _ascii_integer(value: Any) -> Any:
    """A query string as an integer: ASCII digits only (``int()`` would also take '٣', '1_000' and ' 5 ');
    an empty value is the default; beyond 64 bits is out of any bound."""
    if not isinstance(value, str):
        return value
    if value == "":
        raise PydanticUseDefault()
    if not _INTEGER.fullmatch(value):
        raise PydanticCustomError("ascii_integer", "must be an integer, not '{value}'", {"value": value[:40]})
    digits = value.lstrip("+-").lstrip("0")
    if len(digits) > len(str(MAX_INT)):  # int() refuses more than 4,300 digits
        return -(MAX_INT + 2) if value.startswith("-") else MAX_INT + 1
    return int(value)


def _flag(value: Any) -> Any:
    """A query boolean as AEP clients send it: true/True/false/False (and 1/0, yes/no); empty is the default."""
    if not isinstance(value, str):
        return value
    if value == "":
        raise PydanticUseDefault()
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise PydanticCustomError("flag", "must be true or false, not '{value}'", {"value": value[:40]})


#: Reads a paging number: ``limit: Annotated[int, Query(ge=1, le=100), AsciiInteger] = 20`` (after the Query).
AsciiInteger = BeforeValidator(_ascii_integer)
#: ``start``: how many items to skip.
Start = Annotated[int, Query(ge=0, le=MAX_INT, description="how many items to skip"), AsciiInteger]
#: Reads a query boolean (``true`` or ``false``), after the Query.
QueryFlag = BeforeValidator(_flag)
#: Longest free-text query parameter (a name, a status, a sort order, a list of properties).
MAX_QUERY_TEXT = 1024


def parse_int(value: str | None, name: str, default: int, *, minimum: int = 0, maximum: int = MAX_INT) -> int:
    """A paging number read by hand (``start``, ``limit``, ``page``): ASCII digits, between ``minimum`` and
    ``maximum``. Routes that declare their parameters use ``AsciiInteger`` instead, which /openapi.json shows."""
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


def at_most(value: int, name: str, maximum: int) -> int:
    """``value`` if it is at most ``maximum`` (a bound that depends on another parameter), else a 400."""
    if value > maximum:
        raise BadRequest(f"query parameter '{name}' must be at most {maximum}", field=name)
    return value


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
