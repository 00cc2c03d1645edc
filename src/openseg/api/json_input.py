"""Request bodies as JSON the rest of openseg can trust: strict UTF-8, bounded nesting, storable values.

Every JSON body goes through :func:`parse_json` once, so no service, store or engine meets a value that
only fails deep inside it: a body nested thousands deep (``RecursionError`` in any recursive walker), a
lone surrogate such as ``"\\ud800"`` (valid JSON, but no UTF-8 encoder, SQLite, PostgreSQL or DuckDB
accepts it), an integer beyond 64 bits (SQLite and DuckDB overflow) or ``NaN`` (not JSON at all; Python
reads it).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from openseg.errors import BadRequest

#: Deepest nesting of objects and arrays a body may have; AEP's bodies are a handful of levels deep.
MAX_DEPTH = 64
#: Integers must fit the 64-bit columns of the metadata store and the engines.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(raw: bytes, *, field: str = "body") -> Any:
    """Decode ``raw`` as a UTF-8 JSON document and check every value it holds.

    Args:
        raw: the request body.
        field: how errors name the document (``body``).

    Returns:
        The parsed document.

    Raises:
        BadRequest: not UTF-8, not JSON, nested deeper than ``MAX_DEPTH``, or holding a lone surrogate, an
            integer outside 64 bits or a non-finite number; the report names the offending field.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"the request body is not UTF-8: byte {exc.start} ({raw[exc.start:exc.start + 1]!r}) "
                         "cannot be decoded; send JSON encoded as UTF-8 without a byte order mark", field=field) from exc
    if text.startswith("\ufeff"):
        raise BadRequest("the request body starts with a byte order mark; send JSON as UTF-8 without one", field=field)
    try:
        document = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"the request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", field=field
        ) from exc
    except RecursionError as exc:
        raise BadRequest(f"the request body is nested too deeply (at most {MAX_DEPTH} levels)", field=field) from exc
    except ValueError as exc:  # an integer of more than 4,300 digits, or a constant refused below
        raise BadRequest(f"the request body is not acceptable JSON: {exc}", field=field) from exc
    check_json_value(document, field=field)
    return document


def check_json_value(document: Any, *, field: str = "body") -> None:
    """Refuse nesting beyond ``MAX_DEPTH``, lone surrogates, integers outside 64 bits and non-finite floats.

    The walk is iterative, so it cannot itself run out of stack.
    """
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        where = path or field
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise BadRequest(f"'{_printable(where)}' is nested too deeply (at most {MAX_DEPTH} levels)",
                                 field=_printable(where))
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise BadRequest(f"a key of '{_printable(where)}' holds a lone UTF-16 surrogate, which is not text",
                                     field=_printable(where))
                child = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
                stack.append((item, child, depth + 1))
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                raise BadRequest(f"'{_printable(where)}' holds a lone UTF-16 surrogate (such as \\ud800), which is not text",
                                 field=_printable(where))
        elif isinstance(value, int) and not isinstance(value, bool):
            if not MIN_INT <= value <= MAX_INT:
                raise BadRequest(f"'{_printable(where)}' is an integer outside the 64-bit range", field=_printable(where))


def _printable(text: str) -> str:
    """``text`` safe to put in an error body (field names can hold anything a client sent)."""
    return _SURROGATE.sub("\ufffd", text)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is beyond the range of a double")
    return number
