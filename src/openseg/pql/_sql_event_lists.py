"""Event aggregates whose conditions test many profile conditions (part of the SQL backend).

A profile test inside an event condition (``xEvent[eventType = "a" or inSegment("s1")]``) is usually decided
both ways (``to_sql.SqlCompiler._decided``), each way doubling the aggregate's event columns, so only a few
can be. Beyond :data:`_profile_tests.MAX_PROFILE_TESTS`, the aggregate reads the profile's events as one list
instead (a derived column: every event row of the profile, within the time range the conditions imply) and
is computed where the profile's own values are known, in the segment's condition: its filters, condition and
value are lambdas over that list which read ``inSegment`` and profile fields as ordinary per-profile values.
The events scan stays one grouped scan; the cost is that it collects the events of each profile it reads.
On DuckDB the list is ``ARRAY_AGG(e)`` of the scan's row alias, which a top-level events column named ``e``
would shadow; XDM has none (custom fields live under ``_tenant``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

from sqlglot import exp

from openseg.pql import ast
from openseg.pql._sql_builders import TRUE, all_of, not_null, safe_size
from openseg.pql._sql_calls import aggregate_items
from openseg.pql._sql_context import SqlContext
from openseg.pql._time import Bounds
from openseg.pql.derived import EVENT_ALIAS, EVENTS, DerivedColumn, bounds_condition, column_key
from openseg.pql.dialects import lambda_


def listed_aggregate(c: SqlContext, kind: ast.AggregateKind, source: ast.Expr, value: ast.Expr | None,
                     condition: ast.Expr | None, variable: str | None, bounds: Bounds | None) -> exp.Expr:
    """``kind`` over the events of ``source`` matching ``condition`` (``variable`` naming the event), computed
    over the profile's list of events; a count is never missing (0 for no events)."""
    events = _events(c, bounds)
    filters: list[tuple[ast.Expr, str | None]] = []
    while not (isinstance(source, ast.FieldPath) and source.root is ast.Root.EVENTS):
        if isinstance(source, ast.EventFilter):
            filters.append((source.condition, None))
        elif isinstance(source, ast.Select) and source.where is not None:
            filters.append((source.where, source.variable))
        elif not isinstance(source, ast.Select):
            raise c.unsupported("event source", f"{type(source).__name__} is not a list of events")
        source = source.source
    if condition is not None and condition != ast.BooleanLiteral(True):
        filters.insert(0, (condition, variable))
    array = events
    for test, name in reversed(filters):  # the innermost filter first
        var, body = c.item_lambda(array, name, test, events=True)
        array = c.dialect.build("array_filter", array, lambda_([var], body))
    if kind is ast.AggregateKind.COUNT:
        return exp.Coalesce(this=safe_size(c.dialect, array), expressions=[exp.Literal.number(0)])
    if value is None:
        raise c.unsupported(kind.value, "an event aggregate needs a value, e.g. sum(commerce.order.priceTotal)")
    var, item = c.item_lambda(array, variable, value, as_boolean=False, events=True)
    return aggregate_items(c, kind, c.dialect.build("array_transform", array, lambda_([var], item)))


def listed_chain(c: SqlContext, node: ast.Chain) -> exp.Expr:
    """Whether the profile's list of events holds the sequence of ``node`` (``_sql_chain`` says what that
    is): for some event matching the first non-negated step, some later event matches the next, and so on;
    and no event matching a negated step lies between its neighbours' events."""
    events = _events(c, None)
    positives = [step for step in node.steps if not step.negated]

    def matched(index: int, times: Mapping[str, exp.Expr]) -> exp.Expr:
        if index == len(positives):
            return all_of([_absent(c, events, node, i, times) for i, step in enumerate(node.steps) if step.negated]
                          or [TRUE.copy()])
        step = positives[index]

        def body(time: exp.Expr) -> exp.Expr:
            parts = [not_null(time), _step_condition(c, step, time)]
            if index:
                parts.append(exp.GT(this=time.copy(), expression=times[positives[index - 1].name].copy()))
            return all_of([*parts, matched(index + 1, {**times, step.name: time})])

        found = _over_events(c, events, node, times, body, step.variable)
        return exp.Coalesce(this=exp.GT(this=safe_size(c.dialect, found), expression=exp.Literal.number(0)),
                            expressions=[exp.false()])

    return matched(0, {})


def _absent(c: SqlContext, events: exp.Expr, node: ast.Chain, index: int, times: Mapping[str, exp.Expr]) -> exp.Expr:
    """No event matches the negated step ``index`` between its neighbouring steps' events."""
    step = node.steps[index]
    before = next((s.name for s in reversed(node.steps[:index]) if not s.negated), None)
    after = next((s.name for s in node.steps[index + 1:] if not s.negated), None)

    def body(time: exp.Expr) -> exp.Expr:
        parts = [not_null(time), _step_condition(c, step, time)]
        if before is not None:
            parts.append(exp.GT(this=time.copy(), expression=times[before].copy()))
        if after is not None:
            parts.append(exp.LT(this=time.copy(), expression=times[after].copy()))
        return all_of(parts)

    found = _over_events(c, events, node, times, body, step.variable)
    return exp.Coalesce(this=exp.EQ(this=safe_size(c.dialect, found), expression=exp.Literal.number(0)),
                        expressions=[TRUE.copy()])


def _over_events(c: SqlContext, events: exp.Expr, node: ast.Chain, times: Mapping[str, exp.Expr],
                 body: Callable[[exp.Expr], exp.Expr], variable: str | None) -> exp.Expr:
    """The events of the list for which ``body(time of the event)`` holds, the steps so far at ``times``
    (``variable``: the step's name for its event)."""
    var = f"_i{c.lambda_depth}"
    c.lambda_depth += 1
    saved = c.scope
    item = exp.column(var)
    variables = {**saved.variables, variable: item} if variable else saved.variables
    bound = saved.event_variables | {variable} if variable else saved.event_variables
    c.scope = replace(saved, item=item, event_item=True, steps=dict(times), variables=variables,
                      event_variables=bound)
    try:
        condition = body(c.visit(node.time_field))
    finally:
        c.scope = saved
        c.lambda_depth -= 1
    return c.dialect.build("array_filter", events.copy(), lambda_([var], condition))


def _step_condition(c: SqlContext, step: ast.ChainStep, time: exp.Expr) -> exp.Expr:
    what = c.boolean(step.what)
    return what if step.when is None else exp.and_(what, c.window(time.copy(), step.when))


def _events(c: SqlContext, bounds: Bounds | None) -> exp.Expr:
    """The derived column of the profile's event rows (those within ``bounds``) as one list."""
    rows = c.dialect.build("events_list", exp.column(EVENT_ALIAS))
    if bounds is not None:  # in the aggregate too: a scan shared with other columns may read more events
        within = bounds_condition(exp.column("timestamp", table=EVENT_ALIAS, quoted=True), bounds)
        rows = exp.Filter(this=rows, expression=exp.Where(this=within))
    return c.register(DerivedColumn(column_key(EVENTS, rows), EVENTS, rows, None, bounds))


__all__ = ["listed_aggregate", "listed_chain"]
