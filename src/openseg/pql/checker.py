"""The checker: field paths and value types of an expression against an XDM :class:`Schema`.

Problems are named in words and located at the offending node (``person.birthYear is a number;
"1990" is a string``, ``unknown field homeAddress.cuntry (did you mean homeAddress.country?)``). All
problems of one expression are reported together (a ``PqlErrors`` when there are several).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from openseg.pql import ast, functions, regex_dialect
from openseg.pql._time import moved_time
from openseg.pql.errors import PqlError, PqlErrors
from openseg.pql.functions import ArgType
from openseg.pql.render import to_text
from openseg.xdm.schema import FieldKind, FieldType, Schema, field_paths

#: The largest capture group regexGroup() may ask for: DuckDB's regexp_extract reads groups 0-9.
MAX_REGEX_GROUP = 9

#: Constructs Python's ``re`` reads but DuckDB's RE2 refuses (so a segment would pass here and fail in every
#: job): lookaround, atomic groups and backreferences (a backslash and a digit not itself escaped).
ANY = FieldType.object()  # stands for "unknown": an empty object accepts any use (see _is_any)
_BOOL, _INT, _NUM, _STR = FieldType.boolean(), FieldType.integer(), FieldType.number(), FieldType.string()
_DATE, _DATETIME = FieldType.date(), FieldType.datetime()


def _is_any(t: FieldType) -> bool:
    return t is ANY


@dataclass(frozen=True)
class CheckedExpr:
    """An expression that passed the checker, with the type of every value node.

    Attributes:
        expr: The checked expression.
        type: The type of the whole expression (boolean for a segment).
        types: Type of each node, keyed by ``id(node)`` (use :meth:`type_of`).
    """

    expr: ast.Expr
    type: FieldType
    types: dict[int, FieldType] = field(repr=False, compare=False)

    @property
    def is_condition(self) -> bool:
        """Whether the expression is a condition (a segment) rather than a value."""
        return self.type == _BOOL

    def type_of(self, node: ast.Node) -> FieldType | None:
        """The type the checker computed for ``node`` (a node of ``expr``); None when untyped or unknown."""
        found = self.types.get(id(node))
        return None if found is None or _is_any(found) else found


def check(expr: ast.Expr, schema: Schema | None = None, *, source: str | None = None,
          value: bool = False) -> CheckedExpr:
    """Validate field paths and types of ``expr``; the whole expression must be a condition (a segment).

    Args:
        expr: A parsed expression.
        schema: Fields to check against (default ``Schema.standard()``).
        source: The expression text, so errors can show a snippet.
        value: Also accept a value (``orders.count()``): AEP's pages document expressions, and ``openseg pql``
            evaluates them; ``CheckedExpr.is_condition`` then tells which it is.

    Returns:
        The expression with its computed types.

    Raises:
        PqlError: The expression does not fit the schema (``PqlErrors`` for several problems).
    """
    checker = _Checker(schema or Schema.standard())
    result = checker.run(expr)
    condition = result.kind is FieldKind.BOOLEAN or _is_any(result) or _is_collection_condition(expr)
    if not (condition or value):
        checker.fail(expr, f"a segment is a condition (true or false), but this is {_describe(result)}")
    errors = [e.with_source(source) if source is not None else e for e in checker.errors]
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise PqlErrors(errors)
    return CheckedExpr(expr, _BOOL if condition else result, checker.types)


def array_crossings(expr: ast.Expr, schema: Schema) -> dict[int, tuple[int, ...]]:
    """The field paths of ``expr`` that read through an array, by node id: the indexes of the segments
    reached through one (``identityMap.email.id`` -> ``(2,)``). Problems of the expression are ignored here
    (``check`` reports them)."""
    checker = _Checker(schema)
    checker.run(expr)
    return checker.crossings


def filtered_objects(expr: ast.Expr, schema: Schema) -> frozenset[int]:
    """The ids of the nodes of ``expr`` that are objects filtered by a condition (``person.filter(age >= 21)``,
    array-functions.md): each is read as a list of itself when the condition holds on it, else empty."""
    checker = _Checker(schema)
    checker.run(expr)
    return frozenset(id(node.source) for node in expr.walk() if isinstance(node, ast.EventFilter)
                     and (found := checker.types.get(id(node.source))) is not None and found.kind is FieldKind.OBJECT)


def _is_collection_condition(expr: ast.Expr) -> bool:
    body = expr.body if isinstance(expr, ast.Lambda) else expr
    return isinstance(body, ast.EventFilter | ast.Select)


def _label(node: ast.Node) -> str:
    """How a message names an operand: the path or literal as written."""
    return to_text(node)


class _Checker(ast.Visitor[FieldType]):
    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self.items: list[FieldType] = []
        self.variables: dict[str, FieldType] = {}
        self.steps: set[str] = set()
        self.types: dict[int, FieldType] = {}
        self.errors: list[PqlError] = []
        #: FieldPath node id -> indexes of its segments reached through an array (see visit_FieldPath).
        self.crossings: dict[int, tuple[int, ...]] = {}

    def run(self, node: ast.Expr) -> FieldType:
        return self.visit(node)

    def visit(self, node: ast.Node) -> FieldType:
        result = super().visit(node)
        self.types[id(node)] = result
        return result

    def fail(self, node: ast.Node, message: str) -> FieldType:
        span = node.span
        self.errors.append(ast.InvalidNode(message, span))
        return ANY

    def _expect(self, node: ast.Expr, wanted: str, test: bool) -> None:
        # Only report when the operand's type is known (unknown types were reported where they arose).
        if not test:
            got = self.types.get(id(node), ANY)
            if not _is_any(got):
                self.fail(node, f"{_label(node)} is {_describe(got)}; {wanted}")

    def condition(self, node: ast.Expr) -> None:
        t = self.visit(node)
        collection = isinstance(node, ast.EventFilter | ast.Select)
        self._expect(node, "a condition (true or false) is needed here", t.kind is FieldKind.BOOLEAN or collection)

    # -- literals ----------------------------------------------------------------------------------

    def visit_StringLiteral(self, node: ast.StringLiteral) -> FieldType:
        return _STR

    def visit_NumberLiteral(self, node: ast.NumberLiteral) -> FieldType:
        return _INT if node.is_integer else _NUM

    def visit_BooleanLiteral(self, node: ast.BooleanLiteral) -> FieldType:
        return _BOOL

    def visit_NullLiteral(self, node: ast.NullLiteral) -> FieldType:
        return ANY

    def visit_DateLiteral(self, node: ast.DateLiteral) -> FieldType:
        return _DATE

    def visit_DateTimeLiteral(self, node: ast.DateTimeLiteral) -> FieldType:
        return _DATETIME

    def visit_Duration(self, node: ast.Duration) -> FieldType:
        # Reached only where no time moves by it (visit_Arithmetic takes those): `x < 3 days`, `-3 days`.
        return self.fail(node, f"{_label(node)} is a duration; a duration can only be added to or subtracted from "
                               "a date or a time (now - 3 days), or bound an occurs window")

    def visit_ArrayLiteral(self, node: ast.ArrayLiteral) -> FieldType:
        element: FieldType = ANY
        for item in node.items:
            t = self.visit(item)
            if _is_any(element):
                element = t
            elif not _is_any(t) and not _comparable(element, t):
                self.fail(item, f"array items must share a type: {_label(item)} is {_describe(t)}, "
                                f"the first item is {_describe(element)}")
        return FieldType.array(element)

    def visit_PeriodEdge(self, node: ast.PeriodEdge) -> FieldType:
        return _DATETIME

    def visit_CurrentTime(self, node: ast.CurrentTime) -> FieldType:
        return _DATETIME if node.kind is ast.CurrentTimeKind.NOW else _DATE

    def visit_StepRef(self, node: ast.StepRef) -> FieldType:
        return _DATETIME

    # -- paths -------------------------------------------------------------------------------------

    def visit_FieldPath(self, node: ast.FieldPath) -> FieldType:
        if node.root is ast.Root.EVENTS:
            return FieldType.array(self.schema.event)
        if node.root is ast.Root.PROFILE:
            current, shown = self.schema.profile, [] if node.name is None else [node.name]
        elif node.root is ast.Root.ITEM:
            current, shown = (self.items[-1] if self.items else ANY), []
        else:
            assert node.name is not None
            current, shown = self.variables.get(node.name, ANY), [node.name]
        # A field read through an array of objects is that field of each item (array-functions.md's
        # `person.orders.storeId`): the crossings are recorded for the SQL backend (see through_arrays).
        crossings: list[int] = []
        for index, segment in enumerate(node.segments):
            if _is_any(current):
                break
            where = ".".join([*shown, *node.segments[:index]])
            if current.kind is FieldKind.ARRAY and current.of is not None \
                    and (current.of.kind in (FieldKind.OBJECT, FieldKind.MAP)):
                crossings.append(index)
                current = current.of
            if current.kind is FieldKind.MAP:
                assert current.of is not None
                current = current.of
            elif current.kind is FieldKind.OBJECT:
                child = current.field(segment)
                if child is None:
                    return self._unknown_field(node, current, shown, index)
                current = child
            else:
                return self.fail(node, f"{where} is {_describe(current)} and has no field {segment}")
        if crossings:
            self.crossings[id(node)] = tuple(crossings)
        if _is_any(current):
            return ANY
        for _ in crossings:
            current = FieldType.array(current)
        return current

    def _unknown_field(self, node: ast.FieldPath, parent: FieldType, shown: list[str], index: int) -> FieldType:
        written = ".".join([*shown, *node.segments])
        prefix = [*shown, *node.segments[:index]]
        candidates = [".".join([*prefix, path]) for path in field_paths(parent)]
        candidates += [".".join([*prefix, name]) for name in parent.field_names]
        close = difflib.get_close_matches(written, candidates, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return self.fail(node, f"unknown field {written}{hint}")

    # -- operators ---------------------------------------------------------------------------------

    def visit_Compare(self, node: ast.Compare) -> FieldType:
        left, right = self.visit(node.left), self.visit(node.right)
        if _is_any(left) or _is_any(right):
            return _BOOL
        if not _comparable(left, right):
            hint = ""
            if node.op is ast.CompareOp.EQ and left.kind is FieldKind.ARRAY and left.of is not None \
                    and _comparable(left.of, right):
                hint = f" (some item: {_label(node.left)}.includes({_label(node.right)}))"
            self.fail(node, f"{_label(node.left)} is {_describe(left)}; {_label(node.right)} is {_describe(right)}"
                            + hint)
        elif node.op not in (ast.CompareOp.EQ, ast.CompareOp.NE) and not _ordered(left):
            self.fail(node, f"{_label(node.left)} is {_describe(left)}, which has no order for {node.op.value}")
        return _BOOL

    def visit_And(self, node: ast.And) -> FieldType:
        for operand in node.operands:
            self.condition(operand)
        return _BOOL

    visit_Or = visit_And

    def visit_Not(self, node: ast.Not) -> FieldType:
        self.condition(node.operand)
        return _BOOL

    def visit_In(self, node: ast.In) -> FieldType:
        value, values = self.visit(node.value), self.visit(node.values)
        word = "notIn" if node.negated else "in"
        if values.kind is not FieldKind.ARRAY:
            self._expect(node.values, f"'{word}' needs a list of values", _is_any(values))
        elif not (_is_any(value) or values.of is None or _is_any(values.of) or _comparable(value, values.of)):
            self.fail(node, f"{_label(node.value)} is {_describe(value)}; {_label(node.values)} is {_describe(values)}")
        return _BOOL

    def visit_Like(self, node: ast.Like) -> FieldType:
        value, pattern = self.visit(node.value), self.visit(node.pattern)
        self._expect(node.value, "'like' needs a string", value.kind is FieldKind.STRING or _is_any(value))
        self._expect(node.pattern, "'like' needs a string pattern", pattern.kind is FieldKind.STRING or _is_any(pattern))
        return _BOOL

    def visit_If(self, node: ast.If) -> FieldType:
        self.condition(node.condition)
        then, otherwise = self.visit(node.then), self.visit(node.otherwise)
        if _is_any(then):
            return otherwise
        if not _is_any(otherwise) and not _comparable(then, otherwise):
            self.fail(node, f"both branches of if must have one type: {_label(node.then)} is {_describe(then)}, "
                            f"{_label(node.otherwise)} is {_describe(otherwise)}")
        return _NUM if then.is_numeric and otherwise.is_numeric and then != otherwise else then

    def visit_Arithmetic(self, node: ast.Arithmetic) -> FieldType:
        moved = moved_time(node)
        if moved is not None:  # a time moved by a duration: `now - 3 days`, `3 days + t`
            time, _, _ = moved
            moment = self.visit(time)
            self._expect(time, "a duration can only be added to or subtracted from a date or a time",
                         moment.is_temporal)
            return moment
        left, right = self.visit(node.left), self.visit(node.right)
        for operand, t in ((node.left, left), (node.right, right)):
            self._expect(operand, f"'{node.op.value}' needs numbers", t.is_numeric or _is_any(t))
        if node.op in (ast.ArithOp.DIV, ast.ArithOp.POW) or left.kind is FieldKind.NUMBER or right.kind is FieldKind.NUMBER:
            return _NUM
        return _INT if left.kind is FieldKind.INTEGER and right.kind is FieldKind.INTEGER else ANY

    def visit_Negate(self, node: ast.Negate) -> FieldType:
        t = self.visit(node.operand)
        self._expect(node.operand, "'-' needs a number", t.is_numeric or _is_any(t))
        return t

    # -- calls -------------------------------------------------------------------------------------

    def visit_Call(self, node: ast.Call) -> FieldType:
        sig = functions.FUNCTIONS[node.name]
        receiver = ANY if node.target is None else self.visit(node.target)
        if node.target is not None and sig.receiver is not None:
            self._expect(node.target, f"{node.name}() needs {_arg_words(sig.receiver)}", _fits(receiver, sig.receiver))
        element = receiver.of if receiver.of is not None else ANY
        item_value = ANY
        for index, arg in enumerate(node.args):
            param = sig.params[min(index, len(sig.params) - 1)]
            if param.type is ArgType.ITEM_VALUE:
                t = item_value = self._in_item(element, arg, node.variable)
            else:
                t = self.visit(arg)
            wanted = element if param.type is ArgType.ELEMENT else None
            ok = _fits(t, param.type) if wanted is None else (_is_any(wanted) or _is_any(t) or _comparable(t, wanted))
            what = _describe(wanted) if wanted is not None else _arg_words(param.type)
            self._expect(arg, f"the {param.name} of {node.name}() must be {what}", ok)
            if param.name == "regex" and isinstance(arg, ast.StringLiteral):
                problem = regex_problem(arg.value)
                if problem:
                    self.fail(arg, f"the regex of {node.name}() {to_text(arg)} is not a regular expression the "
                                   f"engines can run alike: {problem} (PQL's regex dialect: docs/pql.md)")
        if node.name == "regexGroup":
            self._check_group(*node.args)
        if node.name in ("topN", "bottomN"):
            # Adobe's pages sort by "a numeric expression"; every evaluator orders numbers alike.
            self._expect(node.args[0], f"the value of {node.name}() must be a number",
                         item_value.kind in (FieldKind.INTEGER, FieldKind.NUMBER) or _is_any(item_value))
        if sig.result is ArgType.ITEM_VALUES:
            return FieldType.array(item_value) if not _is_any(item_value) else ANY
        if sig.result is ArgType.GROUPS:
            # Map keys are strings (XDM maps, and one key type for every engine).
            self._expect(node.args[0], f"the key of {node.name}() must be a string",
                         item_value.kind is FieldKind.STRING or _is_any(item_value))
            return FieldType.map(FieldType.array(element)) if not _is_any(element) else FieldType.map(ANY)
        return _result(sig.result, receiver)

    def _check_group(self, regex: ast.Expr, group: ast.Expr) -> None:
        """regexGroup's regex and group are written out, the group one the regex has: DuckDB reads only a
        constant group 0-9, and the engines answer a group past the regex's differently (Spark fails)."""
        if not isinstance(regex, ast.StringLiteral) or regex_problem(regex.value):
            if not isinstance(regex, ast.StringLiteral):
                self.fail(regex, "the regex of regexGroup() must be written as a string, e.g. \"@(.+)$\"")
            return
        if not isinstance(group, ast.NumberLiteral):
            self.fail(group, "the group of regexGroup() must be written as a whole number, e.g. 1")
            return
        if not group.is_integer:
            return  # reported by the argument's type
        groups = regex_dialect.compile_python(regex.value).groups
        if MAX_REGEX_GROUP < group.value <= groups:
            self.fail(group, f"regexGroup() reads groups 0 to {MAX_REGEX_GROUP} only, not {group.value}")
        elif not 0 <= group.value <= groups:
            self.fail(group, f"regexGroup() has no group {group.value} in {to_text(regex)}: the group must be "
                             f"0 (the whole match){f' to {groups}' if groups else ''}")

    def _in_item(self, item: FieldType, node: ast.Expr, variable: str | None = None) -> FieldType:
        if variable is not None:
            outer = self.variables.get(variable)
            self.variables[variable] = item
            try:
                return self.visit(node)
            finally:
                if outer is None:
                    del self.variables[variable]
                else:
                    self.variables[variable] = outer
        self.items.append(item)
        try:
            return self.visit(node)
        finally:
            self.items.pop()

    # -- time --------------------------------------------------------------------------------------

    def visit_Occurs(self, node: ast.Occurs) -> FieldType:
        t = self.visit(node.value)
        self._expect(node.value, "'occurs' needs a date or a date and time", t.is_temporal or _is_any(t))
        self.visit(node.window)
        return _BOOL

    def _anchor(self, anchor: ast.Expr) -> None:
        t = self.visit(anchor)
        self._expect(anchor, "a time window needs a date or a date and time", t.is_temporal or _is_any(t))

    def visit_RelativeWindow(self, node: ast.RelativeWindow) -> FieldType:
        self._anchor(node.anchor)
        return ANY

    def visit_PointWindow(self, node: ast.PointWindow) -> FieldType:
        self._anchor(node.anchor)
        return ANY

    def visit_OnWindow(self, node: ast.OnWindow) -> FieldType:
        self._anchor(node.anchor)
        return ANY

    def visit_BetweenWindow(self, node: ast.BetweenWindow) -> FieldType:
        self._anchor(node.start)
        self._anchor(node.end)
        return ANY

    def visit_PeriodWindow(self, node: ast.PeriodWindow) -> FieldType:
        return ANY

    # -- collections -------------------------------------------------------------------------------

    def _collection(self, source: ast.Expr) -> FieldType:
        t = self.visit(source)
        if t.kind is not FieldKind.ARRAY:
            self._expect(source, "a list (xEvent or an array field) is needed here", _is_any(t))
            return ANY
        assert t.of is not None
        return t.of

    def _bound(self, variable: str | None, item: FieldType, node: ast.Expr) -> None:
        if variable is None:
            self.items.append(item)
            try:
                self.condition(node)
            finally:
                self.items.pop()
            return
        outer = self.variables.get(variable)
        self.variables[variable] = item
        try:
            self.condition(node)
        finally:
            if outer is None:
                del self.variables[variable]
            else:
                self.variables[variable] = outer

    def visit_EventFilter(self, node: ast.EventFilter) -> FieldType:
        source = self.visit(node.source)
        # An object filtered by a condition (array-functions.md: `person.filter(age >= 21)`) is a list of itself
        # when the condition holds on it, else empty.
        item = source if source.kind is FieldKind.OBJECT else self._collection(node.source)
        self._bound(None, item, node.condition)
        return FieldType.array(item) if not _is_any(item) else ANY

    def visit_Aggregate(self, node: ast.Aggregate) -> FieldType:
        item = self._collection(node.source)
        if node.kind is ast.AggregateKind.COUNT:
            return _INT
        value = item if node.value is None else self._in_item(item, node.value)
        target = node.value if node.value is not None else node.source
        if node.kind in (ast.AggregateKind.SUM, ast.AggregateKind.AVG):
            self._expect(target, f"{node.kind.value}() needs numbers", value.is_numeric or _is_any(value))
            return _NUM if node.kind is ast.AggregateKind.AVG else value
        self._expect(target, f"{node.kind.value}() needs numbers, dates or strings", _ordered(value) or _is_any(value))
        return value

    def visit_Exists(self, node: ast.Exists) -> FieldType:
        self._bound(node.variable, self._collection(node.source), node.condition)
        return _BOOL

    visit_ForAll = visit_Exists

    def visit_Select(self, node: ast.Select) -> FieldType:
        item = self._collection(node.source)
        if node.where is not None:
            self._bound(node.variable, item, node.where)
        return FieldType.array(item) if not _is_any(item) else ANY

    def visit_Chain(self, node: ast.Chain) -> FieldType:
        item = self._collection(node.source)
        t = self._in_item(item, node.time_field)
        self._expect(node.time_field, "the chain's time field must be a date and time", t.is_temporal or _is_any(t))
        for step in node.steps:
            self.items.append(item)
            outer = self.variables.get(step.variable) if step.variable else None
            if step.variable:  # the step's event, named because `^` reads it from a list of its condition
                self.variables[step.variable] = item
            try:
                self.visit(step)
            finally:
                self.items.pop()
                if step.variable and outer is None:
                    del self.variables[step.variable]
                elif step.variable and outer is not None:
                    self.variables[step.variable] = outer
        return _BOOL

    def visit_ChainStep(self, node: ast.ChainStep) -> FieldType:
        self.condition(node.what)
        if node.when is not None:
            self.visit(node.when)
        return ANY

    def visit_InSegment(self, node: ast.InSegment) -> FieldType:
        return _BOOL

    def visit_Lambda(self, node: ast.Lambda) -> FieldType:
        return self.visit(node.body)


def _describe(t: FieldType) -> str:
    # Users think of integers and decimals alike as numbers; messages follow them.
    return "a number" if t.kind is FieldKind.INTEGER else t.describe().replace("of integers", "of numbers")


def _comparable(a: FieldType, b: FieldType) -> bool:
    if _is_any(a) or _is_any(b):
        return True
    if a.is_numeric and b.is_numeric:
        return True
    if a.is_temporal and b.is_temporal:
        return True
    if a.kind is FieldKind.ARRAY and b.kind is FieldKind.ARRAY:
        return a.of is None or b.of is None or _comparable(a.of, b.of)
    return a.kind is b.kind and a.kind not in (FieldKind.OBJECT, FieldKind.MAP)


def _ordered(t: FieldType) -> bool:
    return t.is_numeric or t.is_temporal or t.kind is FieldKind.STRING


def _fits(t: FieldType, wanted: ArgType) -> bool:
    if _is_any(t):
        return True
    checks = {
        ArgType.STRING: t.kind is FieldKind.STRING,
        ArgType.INTEGER: t.kind is FieldKind.INTEGER,
        ArgType.NUMBER: t.is_numeric,
        ArgType.BOOLEAN: t.kind is FieldKind.BOOLEAN,
        ArgType.TEMPORAL: t.is_temporal,
        ArgType.DATE: t.kind is FieldKind.DATE,
        ArgType.DATETIME: t.kind is FieldKind.DATETIME,
        ArgType.ARRAY: t.kind is FieldKind.ARRAY,
        ArgType.MAP: t.kind is FieldKind.MAP,
        ArgType.PREDICATE: t.kind is FieldKind.BOOLEAN,
    }
    return checks.get(wanted, True)


def _arg_words(wanted: ArgType) -> str:
    return {
        ArgType.STRING: "a string", ArgType.INTEGER: "an integer", ArgType.NUMBER: "a number",
        ArgType.BOOLEAN: "true or false", ArgType.TEMPORAL: "a date or a date and time", ArgType.DATE: "a date",
        ArgType.DATETIME: "a date and time", ArgType.ARRAY: "an array", ArgType.MAP: "a map",
        ArgType.PREDICATE: "a condition",
    }.get(wanted, "a value")


def _result(result: ArgType, receiver: FieldType) -> FieldType:
    element = receiver.of if receiver.of is not None else ANY
    return {
        ArgType.BOOLEAN: _BOOL, ArgType.STRING: _STR, ArgType.INTEGER: _INT, ArgType.NUMBER: _NUM,
        ArgType.DATE: _DATE, ArgType.DATETIME: _DATETIME, ArgType.SAME: receiver, ArgType.ELEMENT: element,
        ArgType.MAP_VALUE: element, ArgType.STRING_ARRAY: FieldType.array(_STR),
        ArgType.MAP_VALUES: FieldType.array(element) if not _is_any(element) else ANY,
    }.get(result, ANY)


def regex_problem(pattern: str) -> str | None:
    """Why ``pattern`` is outside PQL's regex dialect (``regex_dialect``), or None when it is inside."""
    found = regex_dialect.problem(pattern)
    return None if found is None else str(found)
