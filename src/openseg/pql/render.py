"""AST → canonical ``pql/text``: ``parse(to_text(e)) == e`` for every tree the parser builds."""

from __future__ import annotations

import json
from dataclasses import fields

from openseg.pql import _sugar, ast

# Binding strength; a child weaker than its parent's slot gets parentheses.
_OR, _AND, _NOT, _CMP, _ADD, _MUL, _UNARY, _POW, _POSTFIX = range(9)


def to_text(node: ast.Node) -> str:
    """Render a node as PQL text in canonical spelling."""
    return _Renderer().visit(node)


def quote(value: str) -> str:
    """A PQL string literal for ``value``."""
    return json.dumps(value, ensure_ascii=False)


class _Renderer(ast.Visitor[str]):
    def __init__(self) -> None:
        #: Paths of a chain step's named event (FieldPath id -> how many levels below the step they are read):
        #: written back with the up operator, the only spelling that names a step's event.
        self.up_levels: dict[int, int] = {}

    def _wrap(self, node: ast.Expr, strength: int) -> str:
        text = self.visit(node)
        return f"({text})" if _strength(node) < strength else text

    def visit_StringLiteral(self, node: ast.StringLiteral) -> str:
        return quote(node.value)

    def visit_NumberLiteral(self, node: ast.NumberLiteral) -> str:
        return repr(node.value)

    def visit_BooleanLiteral(self, node: ast.BooleanLiteral) -> str:
        return "true" if node.value else "false"

    def visit_NullLiteral(self, node: ast.NullLiteral) -> str:
        return "null"

    def visit_DateLiteral(self, node: ast.DateLiteral) -> str:
        return f"date({quote(node.value.isoformat())})"

    def visit_DateTimeLiteral(self, node: ast.DateTimeLiteral) -> str:
        return f"datetime({quote(node.value.isoformat().replace('+00:00', 'Z'))})"

    def visit_Duration(self, node: ast.Duration) -> str:
        return f"{node.amount} {_unit(node.unit, node.amount)}"

    def visit_ArrayLiteral(self, node: ast.ArrayLiteral) -> str:
        return "[" + ", ".join(self.visit(item) for item in node.items) + "]"

    def visit_CurrentTime(self, node: ast.CurrentTime) -> str:
        return node.kind.value

    def visit_PeriodEdge(self, node: ast.PeriodEdge) -> str:
        # Which edge follows from the window's direction (`before this month`, `after last week`).
        return f"{node.relation.value} {node.unit.value}"

    def visit_FieldPath(self, node: ast.FieldPath) -> str:
        levels = self.up_levels.get(id(node))
        if levels:
            return "^" * levels + "." + ".".join(_name(s) for s in node.segments)
        if levels == 0:  # the step's event itself: its fields are bare
            return self.visit_FieldPath(ast.FieldPath(ast.Root.ITEM, node.segments))
        if node.name is not None:
            return ".".join([node.name, *(_name(s) for s in node.segments)])
        first, *rest = node.segments
        # A first segment spelled like a keyword would be read as one: quote it.
        head = f"`{first}`" if first.lower() in _KEYWORD_STARTS or first == "xEvent" else _name(first)
        return ".".join([head, *(_name(s) for s in rest)])

    def visit_StepRef(self, node: ast.StepRef) -> str:
        return node.name

    def visit_Compare(self, node: ast.Compare) -> str:
        return f"{self._wrap(node.left, _ADD)} {node.op.value} {self._wrap(node.right, _ADD)}"

    def visit_And(self, node: ast.And) -> str:
        return " and ".join(self._wrap(item, _NOT) for item in node.operands)

    def visit_Or(self, node: ast.Or) -> str:
        return " or ".join(self._wrap(item, _AND) for item in node.operands)

    def visit_Not(self, node: ast.Not) -> str:
        return f"not {self._wrap(node.operand, _NOT)}"

    def visit_In(self, node: ast.In) -> str:
        word = "notIn" if node.negated else "in"
        return f"{self._wrap(node.value, _ADD)} {word} {self._wrap(node.values, _ADD)}"

    def visit_Like(self, node: ast.Like) -> str:
        return f"{self._wrap(node.value, _ADD)} like {self._wrap(node.pattern, _ADD)}"

    def visit_If(self, node: ast.If) -> str:
        return f"if({self.visit(node.condition)}, {self.visit(node.then)}, {self.visit(node.otherwise)})"

    def visit_Arithmetic(self, node: ast.Arithmetic) -> str:
        if node.op is ast.ArithOp.POW:
            # Right-associative, and its exponent may be negated: `a ^ -b`, `(a ^ b) ^ c`.
            return f"{self._wrap(node.left, _POW + 1)} ^ {self._wrap(node.right, _UNARY)}"
        strength = _ADD if node.op in (ast.ArithOp.ADD, ast.ArithOp.SUB) else _MUL
        # Left-associative: the right operand needs parentheses at equal strength.
        return f"{self._wrap(node.left, strength)} {node.op.value} {self._wrap(node.right, strength + 1)}"

    def visit_Negate(self, node: ast.Negate) -> str:
        return f"-{self._wrap(node.operand, _POSTFIX)}"

    def visit_Call(self, node: ast.Call) -> str:
        written = [self.visit(arg) for arg in node.args]
        if node.variable is not None:
            written[0] = f"{node.variable} => {written[0]}"  # the item-value argument comes first
        args = ", ".join(written)
        if node.target is None:
            return f"{node.name}({args})"
        return f"{self._wrap(node.target, _POSTFIX)}.{node.name}({args})"

    def visit_RelativeWindow(self, node: ast.RelativeWindow) -> str:
        return f"{node.op.value} {node.amount} {_unit(node.unit, node.amount)} {node.direction.value} " + self._wrap(
            node.anchor, _ADD
        )

    def visit_PointWindow(self, node: ast.PointWindow) -> str:
        return f"{node.direction.value} {self._wrap(node.anchor, _ADD)}"

    def visit_OnWindow(self, node: ast.OnWindow) -> str:
        return f"on {self._wrap(node.anchor, _ADD)}"

    def visit_BetweenWindow(self, node: ast.BetweenWindow) -> str:
        return f"between {self._wrap(node.start, _ADD)} and {self._wrap(node.end, _ADD)}"

    def visit_PeriodWindow(self, node: ast.PeriodWindow) -> str:
        return f"{node.relation.value} {node.unit.value}"

    def visit_Occurs(self, node: ast.Occurs) -> str:
        return f"{self._wrap(node.value, _ADD)} occurs {self.visit(node.window)}"

    def visit_EventFilter(self, node: ast.EventFilter) -> str:
        return f"{self._wrap(node.source, _POSTFIX)}[{self.visit(node.condition)}]"

    def visit_Aggregate(self, node: ast.Aggregate) -> str:
        value = "" if node.value is None else self.visit(node.value)
        return f"{self._wrap(node.source, _POSTFIX)}.{node.kind.value}({value})"

    def _quantifier(self, word: str, method: str, node: ast.Exists | ast.ForAll) -> str:
        if node.variable is None:
            return f"{self._wrap(node.source, _POSTFIX)}.{method}({self.visit(node.condition)})"
        return f"{word} {node.variable} from {self._wrap(node.source, _POSTFIX)} where {self.visit(node.condition)}"

    def visit_Exists(self, node: ast.Exists) -> str:
        return self._quantifier("exists", "exists", node)

    def visit_ForAll(self, node: ast.ForAll) -> str:
        return self._quantifier("forall", "all", node)

    def visit_Select(self, node: ast.Select) -> str:
        where = "" if node.where is None else f" where {self.visit(node.where)}"
        return f"select {node.variable} from {self._wrap(node.source, _POSTFIX)}{where}"

    def visit_ChainStep(self, node: ast.ChainStep) -> str:
        when = "" if node.when is None else f" WHEN({self.visit(node.when)})"
        negation = "not " if node.negated else ""
        if node.variable is not None:
            self.up_levels.update(_levels_below(node.what, node.variable))
        return f"{node.name}: {negation}WHAT({self.visit(node.what)}){when}"

    def visit_Chain(self, node: ast.Chain) -> str:
        steps = ", ".join(self.visit(step) for step in node.steps)
        return f"chain({self.visit(node.source)}, {self.visit(node.time_field)}, [{steps}])"

    def visit_InSegment(self, node: ast.InSegment) -> str:
        if node.namespace == "ups":
            return f"inSegment({quote(node.segment_id)})"
        return f"inSegment({quote(node.namespace)}, {quote(node.segment_id)})"

    def visit_Lambda(self, node: ast.Lambda) -> str:
        return f"({node.params[0]}) => {self.visit(node.body)}"


def _levels_below(node: ast.Node, variable: str, depth: int = 0) -> dict[int, int]:
    """The paths of ``variable`` in ``node``, each with the number of list levels between ``node`` and it."""
    if isinstance(node, ast.FieldPath):
        return {id(node): depth} if node.root is ast.Root.VARIABLE and node.name == variable else {}
    found: dict[int, int] = {}
    inner = _sugar.inner_scopes(node)
    for f in fields(node):
        value = getattr(node, f.name)
        for child in value if isinstance(value, tuple) else (value,):
            if isinstance(child, ast.Node):
                found.update(_levels_below(child, variable, depth + (f.name in inner)))
    return found


def _strength(node: ast.Expr) -> int:
    if isinstance(node, ast.Or):
        return _OR
    if isinstance(node, ast.And):
        return _AND
    if isinstance(node, ast.Not):
        return _NOT
    if isinstance(node, ast.Compare | ast.In | ast.Like | ast.Occurs | ast.Lambda):
        return _CMP
    if isinstance(node, ast.Exists | ast.ForAll | ast.Select) and node.variable is not None:
        return _OR  # `where` takes everything after it: parenthesise inside larger expressions
    if isinstance(node, ast.Arithmetic) and node.op is ast.ArithOp.POW:
        return _POW
    if isinstance(node, ast.Arithmetic):
        return _ADD if node.op in (ast.ArithOp.ADD, ast.ArithOp.SUB) else _MUL
    if isinstance(node, ast.Negate) or (isinstance(node, ast.NumberLiteral) and node.value < 0):
        return _UNARY
    if isinstance(node, ast.Duration):
        return _UNARY
    return _POSTFIX


def _unit(unit: ast.TimeUnit, amount: int) -> str:
    if amount == 1:
        return unit.value
    return {ast.TimeUnit.CENTURY: "centuries", ast.TimeUnit.MILLENNIUM: "millennia"}.get(unit, unit.value + "s")


_KEYWORD_STARTS = frozenset(
    {"true", "false", "null", "now", "today", "yesterday", "tomorrow", "exists", "forall", "select"}
)
_WORD_START = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def _name(segment: str) -> str:
    # Segments that are not plain identifiers (segment ids with dashes, reserved words) need backticks.
    plain = segment[:1] in _WORD_START and all(c.isalnum() or c == "_" for c in segment)
    reserved = segment.lower() in ("and", "or", "not", "in", "notin", "like", "occurs")
    return segment if plain and not reserved else f"`{segment}`"
