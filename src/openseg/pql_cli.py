"""``openseg pql check|sql|eval``: the language from the shell."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import typer

from openseg.catalog.records import FileFormatError, records_to_table
from openseg.catalog.validation import EVENT, PROFILE, parse_rfc3339, typed_record
from openseg.pql import PqlError, ast, parse
from openseg.pql.checker import check
from openseg.pql.describe import describe
from openseg.pql.errors import NotSupportedOnEngine
from openseg.xdm.schema import Schema

app = typer.Typer(help="Profile Query Language: check, compile and evaluate expressions.", no_args_is_help=True)


def _parsed(expression: str, schema: Schema | None = None, *, value: bool = False) -> ast.Expr:
    return _checked(expression, schema, value=value)[0]


def _checked(expression: str, schema: Schema | None = None, *, value: bool = False) -> tuple[ast.Expr, bool]:
    """The parsed expression and whether it is a condition (``value``: a value, ``orders.count()``, is accepted
    too); a problem is one line on stderr and exit 2."""
    try:
        expr = parse(expression)
        checked = check(expr, schema, source=expression, value=value)
    except PqlError as error:
        typer.echo(str(error.with_source(expression)), err=True)
        raise typer.Exit(2) from error
    return expr, checked.is_condition


def _now(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    parsed = parse_rfc3339(value)
    if parsed is None:
        typer.echo(f"--now must be an ISO 8601 date-time with an offset, such as 2026-01-01T00:00:00Z; got {value!r}",
                   err=True)
        raise typer.Exit(2)
    return parsed


@app.command("check")
def check_command(expression: Annotated[str, typer.Argument(help="the PQL expression")]) -> None:
    """Check an expression: exit 0 and describe it, or exit 2 with the error and its position."""
    expr = _parsed(expression)
    typer.echo(f"ok: {describe(expr)}")


@app.command("sql")
def sql_command(
    expression: Annotated[str, typer.Argument(help="the PQL expression")],
    dialect: Annotated[str, typer.Option(help="duckdb or spark")] = "duckdb",
    now: Annotated[str | None, typer.Option(help="evaluation time (RFC 3339); default: now")] = None,
) -> None:
    """Print the SQL an expression compiles to (the one-pass plan of a one-segment job; ``inSegment`` reads
    the membership store's snapshot, its segments numbered in the order of their ids). For a value
    (``orders.count()``) the plan's column is each profile's value."""
    from openseg.pql import ast
    from openseg.segmentation.membership import BitsRelation
    from openseg.segmentation.planner import plan_segments

    if dialect not in ("duckdb", "spark"):
        typer.echo("--dialect must be duckdb or spark", err=True)
        raise typer.Exit(2)
    parsed, is_condition = _checked(expression, value=True)
    referenced = sorted({n.segment_id for n in parsed.walk() if isinstance(n, ast.InSegment) and n.namespace == "ups"})
    relation = BitsRelation({segment_id: bit for bit, segment_id in enumerate(referenced)})
    try:
        plan = plan_segments([("segment" if is_condition else "value", parsed)], as_of=_now(now), dialect=dialect,
                             membership=relation, values=not is_condition)
    except NotSupportedOnEngine as error:
        # One line, like a check error: the construct, the engine and why (no traceback).
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from error
    typer.echo(plan.query.sql(dialect=dialect, pretty=True))


def _records(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    typer.echo(f"{path}:{number}: not valid JSON: {exc.msg}", err=True)
                    raise typer.Exit(2) from exc


def _typed(path: Path, kind: str) -> list[dict[str, Any]]:
    """The file's records with their standard values typed as ingestion types them (dates, timestamps)."""
    records = []
    for number, record in enumerate(_records(path), start=1):
        if not isinstance(record, dict):
            typer.echo(f"{path}:{number}: a record must be a JSON object", err=True)
            raise typer.Exit(2)
        typed, problems = typed_record(record, kind)
        for field, reason in problems:
            typer.echo(f"{path}:{number}: field '{field}' {reason}", err=True)
        if problems:
            raise typer.Exit(2)
        records.append(typed)
    return records


def _arrow_schemas(path: Path | None, records: list[dict[str, Any]]) -> list[pa.Schema]:
    """The Arrow schema ingestion would give these records (none without records), for the fields the
    standard does not define (a standard field keeps its catalog type)."""
    if not records:
        return []
    try:
        # identityMap is standard, and the kind only decides whether `timestamp` is parsed: neither matters here.
        return [records_to_table([{k: v for k, v in r.items() if k != "identityMap"} for r in records], PROFILE).schema]
    except FileFormatError as error:
        typer.echo(f"{path}: {error}", err=True)
        raise typer.Exit(2) from error


def _identities(record: dict[str, Any]) -> set[tuple[str, str]]:
    return {(namespace.lower(), str(i.get("id"))) for namespace, ids in (record.get("identityMap") or {}).items()
            for i in ids or [] if isinstance(i, dict)}


def _profile_id(record: dict[str, Any]) -> str:
    if record.get("_id"):
        return str(record["_id"])
    for namespace, ids in (record.get("identityMap") or {}).items():
        for identity in ids or []:
            if identity.get("primary"):
                return f"{namespace}:{identity['id']}"
    keys = sorted(f"{n}:{i}" for n, i in _identities(record))
    return keys[0] if keys else ""


@app.command("eval")
def eval_command(
    expression: Annotated[str, typer.Argument(help="the PQL expression")],
    profiles: Annotated[Path, typer.Option("--profiles", help="merged profiles, one JSON object per line")],
    events: Annotated[Path | None, typer.Option("--events", help="experience events, JSON lines")] = None,
    now: Annotated[str | None, typer.Option(help="evaluation time (RFC 3339); default: now")] = None,
) -> None:
    """Print the ``_id`` of each profile in the file that qualifies (events link by any shared identity); for a
    value expression (``orders.count()``), each profile's ``_id``, a tab and its value as JSON.

    Values are typed as ingestion types them (standard ``date``/``date-time`` text becomes dates and
    timestamps), and the expression is checked against standard XDM plus the fields the files hold.
    """
    from openseg.json_values import json_value
    from openseg.pql.to_python import compile_predicate, compile_value

    people = _typed(profiles, PROFILE)
    happenings = _typed(events, EVENT) if events else []
    schema = Schema.from_arrow_files(_arrow_schemas(profiles, people), _arrow_schemas(events, happenings))
    parsed, is_condition = _checked(expression, schema, value=True)
    as_of = _now(now)
    owners: dict[tuple[str, str], list[int]] = defaultdict(list)
    for index, person in enumerate(people):
        for identity in _identities(person):
            owners[identity].append(index)
    linked: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for event in happenings:
        if isinstance(event.get("timestamp"), str):
            event["timestamp"] = parse_rfc3339(event["timestamp"]) or event["timestamp"]
        for index in sorted({i for identity in _identities(event) for i in owners.get(identity, [])}):
            linked[index].append(event)
    if not is_condition:
        value = compile_value(parsed, as_of)
        for index, person in enumerate(people):
            computed = value(person, sorted(linked[index], key=lambda e: str(e.get("timestamp"))))
            typer.echo(f"{_profile_id(person)}\t{json.dumps(json_value(computed), default=str)}")
        return
    predicate = compile_predicate(parsed, as_of)
    for index, person in enumerate(people):
        if predicate(person, sorted(linked[index], key=lambda e: str(e.get("timestamp")))):
            typer.echo(_profile_id(person))
