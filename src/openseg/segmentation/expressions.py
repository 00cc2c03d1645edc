"""AEP's expression object ``{type: PQL, format, value}``: read in either format, converted between them.

``pql/text`` carries PQL text. ``pql/json`` carries AEP's JSON tree as a string
(``shared/aep-openapi/segmentation.yaml``, ``createSegmentDefinition``); a ``pql/json`` value that is not a
JSON object is read as PQL text, because AEP's own job responses show ``pql/json`` expressions whose value
is PQL text (``shared/seed``, "segment jobs"). Errors become AEP's 400 here, at the service edge: PQL text
problems name their line and column, JSON tree problems the JSON pointer of the bad node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from openseg.errors import BadRequest
from openseg.pql import ast, parse, to_text
from openseg.pql.errors import PqlError
from openseg.pql.json_tree import JsonTreeError, from_json_text, to_json_text

FORMATS = ("pql/text", "pql/json")


@dataclass(frozen=True)
class Expression:
    """A read expression: its PQL text (rendered when it came as a JSON tree) and its tree.

    ``expr`` is parsed from ``text``, so positions in later errors (the checker's) point into ``text``.
    """

    format: str
    text: str
    expr: ast.Expr
    from_tree: bool


def pql_error(error: PqlError, field: str = "expression.value", *, as_text: str | None = None) -> BadRequest:
    """A PQL problem as AEP's 400: the position (or JSON pointer) and what was expected.

    Args:
        error: The problem.
        field: The request field holding the expression.
        as_text: The PQL text the problem's line and column refer to, when the request sent a JSON tree.
    """
    expected = f"; expected {', '.join(error.expected)}" if error.expected and "expected" not in error.message else ""
    found = f" (found {error.found})" if isinstance(error, JsonTreeError) and error.found else ""
    if isinstance(error, JsonTreeError):
        where = f"at JSON pointer \"{error.pointer}\""
    elif as_text is not None:
        where = f"line {error.line}, column {error.col} of its pql/text form {as_text}"
    else:
        where = f"line {error.line}, column {error.col}"
    report = {"field": field, **error.to_dict(), **({"pqlText": as_text} if as_text is not None else {})}
    return BadRequest(f"{field}: {where}: {error.message}{found}{expected}", field=field, report=report)


def read_expression(expression: object, field: str = "expression") -> Expression:
    """Validate an expression object and parse its value in its format.

    Raises:
        BadRequest: A malformed object, or a value that does not parse (AEP's 400 body).
    """
    if not isinstance(expression, dict):
        raise BadRequest(f"'{field}' must be an object {{type, format, value}}", field=field)
    if str(expression.get("type", "PQL")).upper() != "PQL":
        raise BadRequest(f"'{field}.type' must be PQL", field=f"{field}.type")
    fmt = expression.get("format", "pql/text")
    if fmt not in FORMATS:
        raise BadRequest(f"'{field}.format' must be one of {', '.join(FORMATS)}", field=f"{field}.format")
    value = expression.get("value")
    if not isinstance(value, str) or not value.strip():
        what = "a JSON tree in a string (or PQL text)" if fmt == "pql/json" else "PQL string"
        raise BadRequest(f"'{field}.value' must be a non-empty {what}", field=f"{field}.value")
    from_tree = fmt == "pql/json" and value.lstrip().startswith("{")
    try:
        text = to_text(from_json_text(value)) if from_tree else value
        return Expression(format=str(fmt), text=text, expr=parse(text), from_tree=from_tree)
    except PqlError as error:
        source = value if not from_tree else None
        raise pql_error(error.with_source(source) if source else error, f"{field}.value") from error


def convert_expression(expression: object, field: str = "expression") -> dict[str, Any]:
    """The expression in the other format: pql/text -> pql/json, pql/json -> pql/text (canonical spelling).

    Raises:
        BadRequest: The expression does not parse, or pql/json cannot express one of its constructs.
    """
    read = read_expression(expression, field)
    if read.format == "pql/json":
        return {"type": "PQL", "format": "pql/text", "value": to_text(read.expr)}
    try:
        tree = to_json_text(read.expr)
    except PqlError as error:
        raise pql_error(error.with_source(read.text), f"{field}.value") from error
    return {"type": "PQL", "format": "pql/json", "value": tree}


def convert_definition(body: dict[str, Any]) -> dict[str, Any]:
    """``POST /segment/conversion``: the posted definition with its expression in the other format."""
    if "expression" not in body:
        raise BadRequest("'expression' is required", field="expression")
    return {**body, "expression": convert_expression(body["expression"])}
