"""Typed reads of the fields of a JSON request body: a value of the wrong type is a 400 naming the field.

Services read bodies with these instead of ``(body.get("schema") or {}).get("name")``, which turns a string
``schema`` into an ``AttributeError`` (a 500), or ``description=body.get("description")``, which hands a list
to the metadata store.
"""

from __future__ import annotations

from typing import Any

from openseg.errors import BadRequest


def optional_object(body: dict[str, Any], key: str, *, field: str | None = None) -> dict[str, Any]:
    """``body[key]`` as an object; absent or null is ``{}``."""
    value = body.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        name = field or key
        raise BadRequest(f"'{name}' must be an object, not {json_type(value)}", field=name)
    return value


def optional_string(body: dict[str, Any], key: str, *, field: str | None = None) -> str | None:
    """``body[key]`` as a string; absent or null is ``None``."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    name = field or key
    raise BadRequest(f"'{name}' must be a string, not {json_type(value)}", field=name)


def string_list(body: dict[str, Any], key: str, *, field: str | None = None) -> list[str]:
    """``body[key]`` as a list of strings; absent or null is ``[]``."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        name = field or key
        raise BadRequest(f"'{name}' must be a list of strings", field=name)
    return value


def json_type(value: object) -> str:
    """The JSON name of ``value``'s type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


#: The largest integer the metadata store and the engines hold (a signed 64-bit column).
MAX_INT = 2**63 - 1


def ascii_integer(text: str, *, maximum: int = MAX_INT) -> int | None:
    """``text`` as a non-negative integer written in ASCII digits and at most ``maximum``, else ``None``.

    ``str.isdigit`` and ``int`` accept '²', '٣' or '1_000'; ids and paging numbers in URLs must not.
    """
    if not text or len(text) > len(str(maximum)) or not all("0" <= char <= "9" for char in text):
        return None
    number = int(text)
    return number if number <= maximum else None
