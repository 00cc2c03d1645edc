"""Any PQL expression in plain English, for explanations, dry-run diffs, job reports and the UI.

``homeAddress.country = "US"`` reads ``home address country is "US"``;
``xEvent[eventType = "commerce.purchases"].count() >= 3`` reads
``the number of events where event type is "commerce.purchases" is at least 3``.
"""

from __future__ import annotations

import re

from openseg.pql import ast
from openseg.pql.render import quote

_COMPARE_WORDS = {
    ast.CompareOp.EQ: "is",
    ast.CompareOp.NE: "is not",
    ast.CompareOp.LT: "is less than",
    ast.CompareOp.LE: "is at most",
    ast.CompareOp.GT: "is greater than",
    ast.CompareOp.GE: "is at least",
}
_DISTANCE_WORDS = {
    ast.CompareOp.EQ: "exactly",
    ast.CompareOp.NE: "not exactly",
    ast.CompareOp.LT: "less than",
    ast.CompareOp.LE: "at most",
    ast.CompareOp.GT: "more than",
    ast.CompareOp.GE: "at least",
}
_ARITH_WORDS = {
    ast.ArithOp.ADD: "plus",
    ast.ArithOp.SUB: "minus",
    ast.ArithOp.MUL: "times",
    ast.ArithOp.DIV: "divided by",
    ast.ArithOp.MOD: "modulo",
    ast.ArithOp.POW: "to the power of",
}
_AGGREGATE_WORDS = {
    ast.AggregateKind.SUM: "the total",
    ast.AggregateKind.AVG: "the average",
    ast.AggregateKind.MIN: "the smallest",
    ast.AggregateKind.MAX: "the largest",
}
# Phrases for registry functions; {t} is the receiver, {0}, {1} ... the arguments.
_CALL_PHRASES = {
    "isNull": "{t} is missing",
    "isNotNull": "{t} is present",
    "exists": "{t} is present",
    "equals": "{t} is {0}",
    "notEqualTo": "{t} is not {0}",
    "startsWith": "{t} starts with {0}",
    "doesNotStartWith": "{t} does not start with {0}",
    "endsWith": "{t} ends with {0}",
    "doesNotEndWith": "{t} does not end with {0}",
    "contains": "{t} contains {0}",
    "doesNotContain": "{t} does not contain {0}",
    "matches": "{t} matches the regular expression {0}",
    "regexGroup": "group {1} of {t} matched by {0}",
    "lower": "{t} in lower case",
    "upper": "{t} in upper case",
    "trim": "{t} without surrounding spaces",
    "length": "the length of {t}",
    "concat": "{all} joined",
    "includes": "{t} includes {0}",
    "intersects": "{t} shares a value with {0}",
    "intersection": "the values of {t} also in {0}",
    "subsetOf": "every value of {t} is in {0}",
    "supersetOf": "{t} includes every value of {0}",
    "distinct": "the distinct values of {t}",
    "first": "the first {0} of {t}",
    "last": "the last {0} of {t}",
    "topN": "the {1} of {t} with the largest {0}",
    "bottomN": "the {1} of {t} with the smallest {0}",
    "map": "the {0} of each of {t}",
    "groupBy": "{t} grouped by {0}",
    "head": "the first of {t}",
    "isEmpty": "{t} is empty",
    "isNotEmpty": "{t} is not empty",
    "get": "{t} {0}",
    "keys": "the keys of {t}",
    "values": "the values of {t}",
    "containsKey": "{t} has the key {0}",
    "abs": "the absolute value of {t}",
    "round": "{t} rounded",
    "floor": "{t} rounded down",
    "ceil": "{t} rounded up",
    "currentYear": "the current year",
    "currentMonth": "the current month",
    "currentDayOfMonth": "the current day of the month",
    "getYear": "the year of {t}",
    "getMonth": "the month of {t}",
    "getDayOfMonth": "the day of the month of {t}",
    "age": "the age in years from {t}",
    "anniversary": "{t} has its anniversary on {0}",
}
_CASE_INSENSITIVE = frozenset(
    {"equals", "notEqualTo", "startsWith", "doesNotStartWith", "endsWith", "doesNotEndWith", "contains",
     "doesNotContain"}
)


def describe(node: ast.Node) -> str:
    """Render an expression (or any node) as plain English.

    Args:
        node: A parsed expression.

    Returns:
        One English sentence fragment, e.g. ``home address country is "US"``.
    """
    describer = _Describer()
    return describer.condition(node) if isinstance(node, ast.Expr) else describer.visit(node)


def words(name: str) -> str:
    """A camelCase field name as lower-case words: ``homeAddress`` → ``home address``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name.strip("_"))
    return " ".join(part if part.isupper() and len(part) > 1 else part.lower() for part in spaced.split())


class _Describer(ast.Visitor[str]):
    def condition(self, node: ast.Expr) -> str:
        """A boolean operand; collections there mean "there is at least one"."""
        if isinstance(node, ast.EventFilter | ast.Select):
            return f"there is at least one of the {self.visit(node)}"
        return self.visit(node)

    def _grouped(self, node: ast.Expr, inside: type) -> str:
        text = self.condition(node)
        needs = isinstance(node, ast.And | ast.Or) and not isinstance(node, inside)
        return f"({text})" if needs else text

    # -- values ------------------------------------------------------------------------------------

    def visit_StringLiteral(self, node: ast.StringLiteral) -> str:
        return quote(node.value)

    def visit_NumberLiteral(self, node: ast.NumberLiteral) -> str:
        return repr(node.value)

    def visit_BooleanLiteral(self, node: ast.BooleanLiteral) -> str:
        return "true" if node.value else "false"

    def visit_NullLiteral(self, node: ast.NullLiteral) -> str:
        return "null"

    def visit_DateLiteral(self, node: ast.DateLiteral) -> str:
        return node.value.isoformat()

    def visit_DateTimeLiteral(self, node: ast.DateTimeLiteral) -> str:
        return node.value.isoformat().replace("+00:00", "Z")

    def visit_Duration(self, node: ast.Duration) -> str:
        return _amount(node.amount, node.unit)

    def visit_ArrayLiteral(self, node: ast.ArrayLiteral) -> str:
        return ", ".join(self.visit(item) for item in node.items) if node.items else "nothing"

    def visit_CurrentTime(self, node: ast.CurrentTime) -> str:
        return node.kind.value

    def visit_PeriodEdge(self, node: ast.PeriodEdge) -> str:
        return f"the {'end' if node.end else 'start'} of {node.relation.value} {node.unit.value}"

    def visit_FieldPath(self, node: ast.FieldPath) -> str:
        if node.root is ast.Root.EVENTS:
            return "events"
        text = " ".join(words(segment) for segment in node.segments)
        if node.root is ast.Root.VARIABLE:
            return f"{node.name}'s {text}" if text else str(node.name)
        return text or "the profile"

    def visit_StepRef(self, node: ast.StepRef) -> str:
        return f"step {node.name}"

    # -- operators ---------------------------------------------------------------------------------

    def visit_Compare(self, node: ast.Compare) -> str:
        if isinstance(node.right, ast.NullLiteral) and node.op in (ast.CompareOp.EQ, ast.CompareOp.NE):
            return f"{self.visit(node.left)} is {'missing' if node.op is ast.CompareOp.EQ else 'present'}"
        return f"{self.visit(node.left)} {_COMPARE_WORDS[node.op]} {self.visit(node.right)}"

    def visit_And(self, node: ast.And) -> str:
        return " and ".join(self._grouped(operand, ast.And) for operand in node.operands)

    def visit_Or(self, node: ast.Or) -> str:
        return " or ".join(self._grouped(operand, ast.Or) for operand in node.operands)

    def visit_Not(self, node: ast.Not) -> str:
        return f"not ({self.condition(node.operand)})"

    def visit_In(self, node: ast.In) -> str:
        which = "none" if node.negated else "one"
        return f"{self.visit(node.value)} is {which} of {self.visit(node.values)}"

    def visit_Like(self, node: ast.Like) -> str:
        return f"{self.visit(node.value)} matches the pattern {self.visit(node.pattern)}"

    def visit_If(self, node: ast.If) -> str:
        return f"{self.visit(node.then)} if {self.condition(node.condition)}, otherwise {self.visit(node.otherwise)}"

    def visit_Arithmetic(self, node: ast.Arithmetic) -> str:
        return f"{self.visit(node.left)} {_ARITH_WORDS[node.op]} {self.visit(node.right)}"

    def visit_Negate(self, node: ast.Negate) -> str:
        return f"minus {self.visit(node.operand)}"

    def visit_Call(self, node: ast.Call) -> str:
        args = [self.visit(arg) for arg in node.args]
        target = "" if node.target is None else self.visit(node.target)
        text = _CALL_PHRASES[node.name].format(*args, *([""] * 3), t=target, all=", ".join(args))
        if node.variable is not None:
            # `scores.map(x => x * x)`: the lambda names the item, so say what it ranges over.
            text = f"{args[0]} for each {node.variable} of {target}" if node.name == "map" \
                else f"{text} ({node.variable} being each item of {target})"
        if node.name in _CASE_INSENSITIVE and len(node.args) > 1:
            flag = node.args[1]
            if isinstance(flag, ast.BooleanLiteral) and not flag.value:
                text += " (ignoring case)"
        return text

    # -- time --------------------------------------------------------------------------------------

    def visit_Occurs(self, node: ast.Occurs) -> str:
        return f"{self.visit(node.value)} is {self.visit(node.window)}"

    def visit_RelativeWindow(self, node: ast.RelativeWindow) -> str:
        is_now = isinstance(node.anchor, ast.CurrentTime) and node.anchor.kind is ast.CurrentTimeKind.NOW
        if is_now and node.op is ast.CompareOp.LE:
            side = "last" if node.direction is ast.Direction.BEFORE else "next"
            return f"within the {side} {_amount(node.amount, node.unit)}"
        distance = _amount(node.amount, node.unit)
        return f"{_DISTANCE_WORDS[node.op]} {distance} {node.direction.value} {self.visit(node.anchor)}"

    def visit_PointWindow(self, node: ast.PointWindow) -> str:
        return f"{node.direction.value} {self.visit(node.anchor)}"

    def visit_OnWindow(self, node: ast.OnWindow) -> str:
        anchor = self.visit(node.anchor)
        return anchor if isinstance(node.anchor, ast.CurrentTime) else f"on {anchor}"

    def visit_BetweenWindow(self, node: ast.BetweenWindow) -> str:
        return f"between {self.visit(node.start)} and {self.visit(node.end)}"

    def visit_PeriodWindow(self, node: ast.PeriodWindow) -> str:
        return f"{node.relation.value} {node.unit.value}"

    # -- collections -------------------------------------------------------------------------------

    def visit_EventFilter(self, node: ast.EventFilter) -> str:
        return f"{self.visit(node.source)} where {self.condition(node.condition)}"

    def visit_Aggregate(self, node: ast.Aggregate) -> str:
        source = self.visit(node.source)
        if node.kind is ast.AggregateKind.COUNT:
            return f"the number of {source}"
        head = _AGGREGATE_WORDS[node.kind]
        if node.value is None:
            return f"{head} of {source}"
        return f"{head} {self.visit(node.value)} of {source}"

    def visit_Exists(self, node: ast.Exists) -> str:
        if node.variable is None:
            return f"there is at least one of the {self.visit(node.source)} where {self.condition(node.condition)}"
        return f"there is {node.variable} in {self.visit(node.source)} where {self.condition(node.condition)}"

    def visit_ForAll(self, node: ast.ForAll) -> str:
        if node.variable is None:
            return f"for all of the {self.visit(node.source)}, {self.condition(node.condition)}"
        return f"for every {node.variable} in {self.visit(node.source)}, {self.condition(node.condition)}"

    def visit_Select(self, node: ast.Select) -> str:
        source = self.visit(node.source)
        return source if node.where is None else f"{source} {node.variable} where {self.condition(node.where)}"

    def visit_ChainStep(self, node: ast.ChainStep) -> str:
        what = ("no event" if node.negated else "an event") + (f" {node.variable}" if node.variable else "")
        when = "" if node.when is None else f" ({self.visit(node.when)})"
        return f"{what} where {self.condition(node.what)}{when} [step {node.name}]"

    def visit_Chain(self, node: ast.Chain) -> str:
        steps = [self.visit(step) for step in node.steps]
        ordered = "; then ".join(steps)
        return f"in order of {self.visit(node.time_field)}: {ordered}"

    def visit_InSegment(self, node: ast.InSegment) -> str:
        where = "" if node.namespace == "ups" else f" of {node.namespace}"
        return f"is in segment {quote(node.segment_id)}{where}"

    def visit_Lambda(self, node: ast.Lambda) -> str:
        return self.condition(node.body)


def _amount(amount: int, unit: ast.TimeUnit) -> str:
    if amount == 1:
        return f"1 {unit.value}"
    plural = {ast.TimeUnit.CENTURY: "centuries", ast.TimeUnit.MILLENNIUM: "millennia"}.get(unit, unit.value + "s")
    return f"{amount} {plural}"
