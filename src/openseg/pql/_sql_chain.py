"""SQL for ``chain(xEvent, timestamp, [steps])`` (part of the SQL backend).

A chain holds when events e0, e1, ... match the non-negated steps in strictly increasing time, each
within its ``WHEN`` window (relative to now or to earlier steps), and no event matching a negated step
(within its window) lies strictly between its neighbouring steps' events (before the next step when the
negated step is first, after the previous one when it is last). It compiles to a self-join of events,
one alias per non-negated step; negated steps become LEFT JOINs whose matches must be absent. A step that
compares an event field with a profile field reads the profile row, joined to the first step's event.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sqlglot import exp

from openseg.pql import _time, ast
from openseg.pql._sql_builders import filter_form, not_null, timestamp_literal
from openseg.pql._sql_context import SqlContext
from openseg.pql.derived import CHAIN, EVENTS, ID, DerivedColumn, column_key, join_profiles


def compile_chain(c: SqlContext, node: ast.Chain) -> DerivedColumn:
    """The derived column (TRUE for profiles with a matching sequence) of one chain."""
    reads_before = c.profile_reads
    positives = [step for step in node.steps if not step.negated]
    aliases = {step.name: f"s{index}" for index, step in enumerate(positives)}
    times: dict[str, exp.Expr] = {}
    conditions: dict[str, exp.Expr] = {}
    previous: str | None = None
    floor: dt.datetime | None = None
    for step in positives:
        alias = aliases[step.name]
        time = _time_of(c, node, alias)
        parts = [not_null(time), _step_condition(c, step, alias, times, time)]
        if previous is not None:
            parts.append(exp.GT(this=time.copy(), expression=times[previous].copy()))
            if floor is not None:
                # Implied (later steps are later than an earlier step inside its window), but a constant
                # bound lets the engine prune this step's events scan instead of joining all of them.
                parts.append(exp.GTE(this=time.copy(), expression=timestamp_literal(floor)))
        floor = _latest(floor, _window_floor(c, step))
        conditions[step.name] = exp.and_(*parts)
        times[step.name] = time
        previous = step.name

    first = aliases[positives[0].name]
    negated: list[tuple[str, exp.Expr, exp.Expr]] = []  # alias, time, join condition
    for index, step in enumerate(node.steps):
        if not step.negated:
            continue
        alias = f"n{index}"
        time = _time_of(c, node, alias)
        same = exp.EQ(this=exp.column(ID, table=alias), expression=exp.column(ID, table=first))
        parts = [same, not_null(time), _step_condition(c, step, alias, times, time)]
        before = _neighbour(node.steps[:index], reverse=True)
        after = _neighbour(node.steps[index + 1:], reverse=False)
        if before is not None:
            parts.append(exp.GT(this=time.copy(), expression=times[before].copy()))
        if after is not None:
            parts.append(exp.LT(this=time.copy(), expression=times[after].copy()))
        negated.append((alias, time, exp.and_(*parts)))

    query = exp.select(exp.column(ID, table=first)).from_(_events(first))
    if c.profile_reads != reads_before:  # a step compares an event field with a profile field
        query = join_profiles(query, first)
    for step in positives[1:]:
        alias = aliases[step.name]
        same = exp.EQ(this=exp.column(ID, table=alias), expression=exp.column(ID, table=first))
        query = query.join(_events(alias), on=filter_form(exp.and_(same, conditions[step.name])), join_type="inner")
    query = query.where(filter_form(conditions[positives[0].name]))

    absent: list[exp.Expr] = []
    for alias, time, condition in negated:
        query = query.join(_events(alias), on=filter_form(condition), join_type="left")
        absent.append(exp.EQ(this=exp.Count(this=time.copy()), expression=exp.Literal.number(0)))

    group: list[exp.Expr] = [exp.column(ID, table=first)]
    for step in positives:
        alias = aliases[step.name]
        group += [exp.column("_id", table=alias), times[step.name].copy()]
    if absent:
        matches = query.group_by(*group).having(exp.and_(*absent))
        result = (
            exp.select(exp.column(ID), exp.alias_(exp.true(), "value"))
            .from_(matches.subquery("chain_matches"))
            .group_by(exp.column(ID))
        )
    else:
        result = query.select(exp.alias_(exp.true(), "value")).group_by(exp.column(ID, table=first))
    return DerivedColumn(key=column_key(CHAIN, result), relation=CHAIN, default=exp.false(), standalone=result)


def _events(alias: str) -> exp.Expr:
    return exp.alias_(exp.to_table(EVENTS), alias, table=True)


def _time_of(c: SqlContext, node: ast.Chain, alias: str) -> exp.Expr:
    scope = c.event_scope(alias)
    saved, c.scope = c.scope, scope
    try:
        return c.visit(node.time_field)
    finally:
        c.scope = saved


def _step_condition(
    c: SqlContext, step: ast.ChainStep, alias: str, times: dict[str, exp.Expr], time: exp.Expr
) -> exp.Expr:
    scope = replace(c.event_scope(alias, step.variable), steps=dict(times))
    saved, c.scope = c.scope, scope
    try:
        what = c.boolean(step.what)
        if step.when is None:
            return what
        return exp.and_(what, c.window(time.copy(), step.when))
    finally:
        c.scope = saved


def _window_floor(c: SqlContext, step: ast.ChainStep) -> dt.datetime | None:
    """The earliest time a step's constant ``WHEN`` window admits (None: unbounded or not constant)."""
    if step.when is None:
        return None
    bounds = _time.constant_bounds(step.when, c.as_of)
    if not bounds or any(b.low is None for b in bounds):
        return None
    return min(b.low for b in bounds if b.low is not None)


def _latest(a: dt.datetime | None, b: dt.datetime | None) -> dt.datetime | None:
    return b if a is None else a if b is None else max(a, b)


def _neighbour(steps: tuple[ast.ChainStep, ...], reverse: bool) -> str | None:
    ordered = reversed(steps) if reverse else iter(steps)
    return next((step.name for step in ordered if not step.negated), None)
