"""Pydantic's validation errors in AEP's words: one 400 naming the field, never FastAPI's 422.

Request bodies (``api/models/``) and declared query and path parameters are validated by pydantic; its
errors become the platform's ``BadRequest`` with a detail such as ``'ttlInDays' must be an integer, not a
string`` and ``report.field`` naming the first field at fault, as the services' own checks phrase them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from openseg.errors import BadRequest
from openseg.request_fields import json_type

#: The first character of a tag naming a branch of a union (``Tag("~patch")``): not a field, left out of names.
UNION_TAG = "~"
#: Where FastAPI says a parameter came from, and how a detail names such a parameter.
_PARAMETER_KINDS = {"query": "query parameter", "path": "path parameter", "header": "header"}


def field_name(loc: Iterable[Any]) -> str:
    """``('identities', 0, 'entityId')`` as ``identities[0].entityId`` (a body's root is ``body``)."""
    name = ""
    for part in loc:
        if isinstance(part, str) and part.startswith(UNION_TAG):
            continue
        if isinstance(part, int):
            name += f"[{part}]"
        else:
            name += f".{part}" if name else str(part)
    return name or "body"


def phrase(error: Mapping[str, Any]) -> str:
    """What is wrong with the value, after its name: ``must be a string, not a number``."""
    kind, ctx, value = error.get("type", ""), error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return "is required"
    expected = _EXPECTED.get(kind)
    if expected is not None:
        return f"must be {expected}, not {json_type(value)}"
    if kind == "string_too_long":
        return f"is {len(str(value))} characters long; at most {ctx['max_length']} are allowed"
    if kind == "string_too_short":
        return "must not be empty" if ctx.get("min_length") == 1 else f"must be at least {ctx['min_length']} characters"
    if kind == "too_long":
        return f"holds {ctx.get('actual_length', '?')} items; at most {ctx['max_length']} are allowed"
    if kind == "too_short":
        return f"must hold at least {ctx['min_length']} item{'' if ctx['min_length'] == 1 else 's'}"
    if kind in _BOUNDS:
        word, key = _BOUNDS[kind]
        return f"must be {word} {ctx[key]}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected'].replace(chr(39), '').replace(' or ', ', ')}"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}"
    message = str(error.get("msg", "is not valid"))
    return message.removeprefix("Value error, ")


_EXPECTED = {
    "string_type": "a string", "dict_type": "an object", "model_type": "an object", "model_attributes_type": "an object",
    "list_type": "a list", "int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
    "bool_type": "true or false", "bool_parsing": "true or false", "float_type": "a number", "float_parsing": "a number",
}
_BOUNDS = {"less_than_equal": ("at most", "le"), "greater_than_equal": ("at least", "ge"),
           "less_than": ("less than", "lt"), "greater_than": ("greater than", "gt")}


def bad_request(errors: Iterable[Mapping[str, Any]]) -> BadRequest:
    """One ``BadRequest`` for pydantic's ``errors``: every problem in the detail, the first one's field in
    ``report.field``, all of them in ``report.errors``.

    A ``loc`` starting with ``query``, ``path`` or ``header`` (FastAPI's parameters) names a parameter; any
    other is a field of the body (``body`` itself when empty).
    """
    problems, details = [], []
    for error in errors:
        loc = tuple(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        if loc and loc[0] in _PARAMETER_KINDS:
            field = field_name(loc[1:])
            details.append(f"{_PARAMETER_KINDS[loc[0]]} '{field}' {phrase(error)}")
        elif loc[-1:] == ("[key]",):  # a key of an object, itself the last but one part: not repeated
            field = field_name(loc[:-2])
            details.append(f"a key of '{field}' {phrase(error)}")
        else:
            field = field_name(loc)
            if field == "body":
                details.append(f"the body {phrase(error).replace('must be an object', 'must be a JSON object')}")
            else:
                details.append(f"'{field}' {phrase(error)}")
        problems.append({"field": field, "message": details[-1]})
    if not problems:
        return BadRequest("the request is not valid", field="body")
    return BadRequest("; ".join(details), field=problems[0]["field"], report={"errors": problems})
