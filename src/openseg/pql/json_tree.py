"""AST <-> ``pql/json``: the JSON tree AEP uses for a PQL expression, as one more backend of the AST.

AEP's segmentation API (``shared/aep-openapi/segmentation.yaml``, ``createSegmentDefinition`` and
``/segment/conversion``) documents four node shapes, and this module writes and reads exactly those:

* ``{"nodeType": "fnApply", "fnName": "=", "params": [...]}`` — an operator or function applied to params;
* ``{"nodeType": "fieldLookup", "fieldName": "country", "object": <node>}`` — a field of a profile path;
* ``{"nodeType": "parameterReference", "position": 1}`` — the profile (``$1``; bare paths start there);
* ``{"nodeType": "literal", "literalType": "String", "value": "US"}`` — ``String``, ``Integer``,
  ``Double``, ``Boolean``, ``Null``, or ``List`` (whose ``value`` is a list of nodes).

Operators keep their PQL spelling as ``fnName`` (``=``, ``and``, ``notIn``, ``-`` with one param is
negation), functions their registry name with the receiver as the first param, and forms with their own
syntax in pql/text are named applications: ``date``/``datetime``/``duration``, ``now``/``today``...,
``inSegment``, and ``occurs`` with a window ``before``/``after``/``on``/``between``/``this``/``last``/``next``.

None of the four shapes binds a variable, so what PQL says about each event or array item (``xEvent``,
``a[...]``, ``exists``/``forall``/``select``, ``.any``/``.all``, aggregates of an item expression,
``topN``, ``chain``) has no JSON form: :func:`to_json` raises one :class:`PqlError` at that node.
:func:`from_json` reports a bad node as a :class:`JsonTreeError` naming its JSON pointer (RFC 6901).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any

from openseg.pql import ast, functions
from openseg.pql.errors import PqlError

NODE_TYPES = ("fnApply", "fieldLookup", "parameterReference", "literal")
LITERAL_TYPES = ("String", "Integer", "Double", "Boolean", "Null", "List")
_COMPARE = {op.value: op for op in ast.CompareOp}
_ARITH = {op.value: op for op in ast.ArithOp}
_AGGREGATES = {kind.value: kind for kind in ast.AggregateKind}
_CURRENT = {kind.value: kind for kind in ast.CurrentTimeKind}
_UNITS = {unit.value: unit for unit in ast.TimeUnit}
# Functions whose arguments are expressions over each item of the receiver (topN, bottomN).
_ITEM_FUNCTIONS = frozenset(
    sig.name for sig in functions.FUNCTIONS.values()
    if sig.node == "Call" and any(p.type in (functions.ArgType.ITEM_VALUE, functions.ArgType.PREDICATE)
                                  for p in sig.params)
)
_WINDOW_NAMES = ("before", "after", "on", "between", "this", "last", "next")

Json = dict[str, Any]


class JsonTreeError(PqlError):
    """A node of a ``pql/json`` tree that cannot be read, named by its JSON pointer.

    Attributes:
        pointer: RFC 6901 pointer of the bad node inside the tree (``""`` is the whole tree).
    """

    def __init__(self, message: str, pointer: str, *, found: str | None = None,
                 expected: tuple[str, ...] = (), line: int = 1, col: int = 1) -> None:
        super().__init__(message, line=line, col=col, found=found, expected=expected)
        self.pointer = pointer

    def to_dict(self) -> dict[str, Any]:
        """The pointer, the problem, what was found and what was expected."""
        return {"message": self.message, "pointer": self.pointer, "found": self.found,
                "expected": list(self.expected)}

    def __str__(self) -> str:
        return f"at JSON pointer {json.dumps(self.pointer)}: {self.message}"


def to_json(node: ast.Expr) -> Json:
    """The ``pql/json`` tree of an expression.

    Raises:
        PqlError: At the first node AEP's JSON shapes cannot express (an event, item or sequence construct).
    """
    return _Writer().visit(node)


def to_json_text(node: ast.Expr) -> str:
    """The ``pql/json`` tree as the compact string AEP carries in ``expression.value``."""
    return json.dumps(to_json(node), ensure_ascii=False, separators=(",", ":"))


def from_json_text(text: str) -> ast.Expr:
    """Read an ``expression.value`` string holding a ``pql/json`` tree.

    Raises:
        JsonTreeError: The text is not JSON (with its line and column) or a node is malformed.
    """
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as problem:
        raise JsonTreeError(f"not valid JSON: {problem.msg} (line {problem.lineno}, column {problem.colno})",
                            "", line=problem.lineno, col=problem.colno) from None
    return from_json(tree)


def from_json(tree: object) -> ast.Expr:
    """The expression a decoded ``pql/json`` tree stands for.

    Raises:
        JsonTreeError: At the first malformed node.
    """
    return _Reader().node(tree, "")


# --------------------------------------------------------------------------------------------------
# writing


def _fn(name: str, *params: Json) -> Json:
    return {"nodeType": "fnApply", "fnName": name, "params": list(params)}


def _literal(literal_type: str, value: object) -> Json:
    return {"nodeType": "literal", "literalType": literal_type, "value": value}


def _string(value: str) -> Json:
    return _literal("String", value)


_NO_JSON_FORM = ("AEP's pql/json nodes (fnApply, fieldLookup, parameterReference, literal) cannot bind an event "
                 "or an array item; send this expression as pql/text")


class _Writer(ast.Visitor[Json]):
    def _refuse(self, node: ast.Node, what: str) -> Json:
        span = node.span
        raise PqlError(f"pql/json cannot express {what}: {_NO_JSON_FORM}", line=span.line, col=span.col,
                       offset=span.start, end_offset=span.end)

    def visit_StringLiteral(self, node: ast.StringLiteral) -> Json:
        return _string(node.value)

    def visit_NumberLiteral(self, node: ast.NumberLiteral) -> Json:
        if isinstance(node.value, float) and not math.isfinite(node.value):
            return self._refuse(node, f"the number {node.value} (JSON has no infinite numbers)")
        return _literal("Integer" if node.is_integer else "Double", node.value)

    def visit_BooleanLiteral(self, node: ast.BooleanLiteral) -> Json:
        return _literal("Boolean", node.value)

    def visit_NullLiteral(self, node: ast.NullLiteral) -> Json:
        return _literal("Null", None)

    def visit_ArrayLiteral(self, node: ast.ArrayLiteral) -> Json:
        return _literal("List", [self.visit(item) for item in node.items])

    def visit_DateLiteral(self, node: ast.DateLiteral) -> Json:
        return _fn("date", _string(node.value.isoformat()))

    def visit_DateTimeLiteral(self, node: ast.DateTimeLiteral) -> Json:
        return _fn("datetime", _string(node.value.isoformat().replace("+00:00", "Z")))

    def visit_Duration(self, node: ast.Duration) -> Json:
        return _fn("duration", _literal("Integer", node.amount), _string(node.unit.value))

    def visit_CurrentTime(self, node: ast.CurrentTime) -> Json:
        return _fn(node.kind.value)

    def visit_PeriodEdge(self, node: ast.PeriodEdge) -> Json:
        # Written as the period window is; the before/after around it says which edge (see _window).
        return _fn(node.relation.value, _string(node.unit.value))

    def visit_FieldPath(self, node: ast.FieldPath) -> Json:
        if node.root is ast.Root.EVENTS:
            return self._refuse(node, "xEvent (the profile's events)")
        if node.root is not ast.Root.PROFILE:
            return self._refuse(node, f"{node.name or node.dotted} (a field of each item)")
        tree: Json = {"nodeType": "parameterReference", "position": 1}
        for segment in node.segments:
            tree = {"nodeType": "fieldLookup", "fieldName": segment, "object": tree}
        return tree

    def visit_Compare(self, node: ast.Compare) -> Json:
        return _fn(node.op.value, self.visit(node.left), self.visit(node.right))

    def visit_And(self, node: ast.And) -> Json:
        return _fn("and", *(self.visit(operand) for operand in node.operands))

    def visit_Or(self, node: ast.Or) -> Json:
        return _fn("or", *(self.visit(operand) for operand in node.operands))

    def visit_Not(self, node: ast.Not) -> Json:
        return _fn("not", self.visit(node.operand))

    def visit_In(self, node: ast.In) -> Json:
        return _fn("notIn" if node.negated else "in", self.visit(node.value), self.visit(node.values))

    def visit_Like(self, node: ast.Like) -> Json:
        return _fn("like", self.visit(node.value), self.visit(node.pattern))

    def visit_If(self, node: ast.If) -> Json:
        return _fn("if", self.visit(node.condition), self.visit(node.then), self.visit(node.otherwise))

    def visit_Arithmetic(self, node: ast.Arithmetic) -> Json:
        return _fn(node.op.value, self.visit(node.left), self.visit(node.right))

    def visit_Negate(self, node: ast.Negate) -> Json:
        return _fn("-", self.visit(node.operand))

    def visit_Call(self, node: ast.Call) -> Json:
        if node.name in _ITEM_FUNCTIONS:
            return self._refuse(node, f"{node.name}(...) of an item expression")
        receiver = [] if node.target is None else [self.visit(node.target)]
        return _fn(node.name, *receiver, *(self.visit(arg) for arg in node.args))

    def visit_Aggregate(self, node: ast.Aggregate) -> Json:
        if node.value is not None:
            return self._refuse(node, f"{node.kind.value}(...) of an item expression")
        return _fn(node.kind.value, self.visit(node.source))

    def visit_Occurs(self, node: ast.Occurs) -> Json:
        return _fn("occurs", self.visit(node.value), self.visit(node.window))

    def visit_RelativeWindow(self, node: ast.RelativeWindow) -> Json:
        duration = _fn("duration", _literal("Integer", node.amount), _string(node.unit.value))
        return _fn(node.direction.value, _string(node.op.value), duration, self.visit(node.anchor))

    def visit_PointWindow(self, node: ast.PointWindow) -> Json:
        return _fn(node.direction.value, self.visit(node.anchor))

    def visit_OnWindow(self, node: ast.OnWindow) -> Json:
        return _fn("on", self.visit(node.anchor))

    def visit_BetweenWindow(self, node: ast.BetweenWindow) -> Json:
        return _fn("between", self.visit(node.start), self.visit(node.end))

    def visit_PeriodWindow(self, node: ast.PeriodWindow) -> Json:
        return _fn(node.relation.value, _string(node.unit.value))

    def visit_InSegment(self, node: ast.InSegment) -> Json:
        if node.namespace == "ups":
            return _fn("inSegment", _string(node.segment_id))
        return _fn("inSegment", _string(node.namespace), _string(node.segment_id))

    def visit_Lambda(self, node: ast.Lambda) -> Json:
        # The top-level lambda's parameter is parameterReference 1, as AEP's own example shows.
        return self.visit(node.body)

    def visit_EventFilter(self, node: ast.EventFilter) -> Json:
        if isinstance(node.source, ast.FieldPath) and node.source.root is ast.Root.EVENTS:
            return self._refuse(node, "xEvent[...] (a condition on each event)")
        return self._refuse(node, "[...] (a condition on each item)")

    def visit_Exists(self, node: ast.Exists) -> Json:
        return self._refuse(node, "exists/any over items")

    def visit_ForAll(self, node: ast.ForAll) -> Json:
        return self._refuse(node, "forall/all over items")

    def visit_Select(self, node: ast.Select) -> Json:
        return self._refuse(node, "select over items")

    def visit_Chain(self, node: ast.Chain) -> Json:
        return self._refuse(node, "chain (a sequence of events)")


# --------------------------------------------------------------------------------------------------
# reading

Builder = Callable[[list[ast.Expr], list[object], str], ast.Expr]


class _Reader:
    def node(self, tree: object, pointer: str) -> ast.Expr:
        if not isinstance(tree, dict):
            raise JsonTreeError("a node must be a JSON object with a nodeType", pointer, found=_kind(tree))
        node_type = tree.get("nodeType")
        if node_type == "fnApply":
            return self._apply(tree, pointer)
        if node_type in ("fieldLookup", "parameterReference"):
            return self._path(tree, pointer)
        if node_type == "literal":
            return self._literal(tree, pointer)
        raise JsonTreeError("unknown nodeType", f"{pointer}/nodeType", found=_shown(node_type),
                            expected=NODE_TYPES)

    def _path(self, tree: Json, pointer: str) -> ast.Expr:
        segments: list[str] = []
        while tree.get("nodeType") == "fieldLookup":
            name = tree.get("fieldName")
            if not isinstance(name, str) or not name:
                raise JsonTreeError("fieldLookup needs a fieldName (a non-empty string)", f"{pointer}/fieldName",
                                    found=_shown(name))
            segments.append(name)
            pointer += "/object"
            inner = tree.get("object")
            if not isinstance(inner, dict) or inner.get("nodeType") not in ("fieldLookup", "parameterReference"):
                raise JsonTreeError("a fieldLookup's object must be a fieldLookup or the parameterReference of "
                                    "the profile", pointer, found=_node_type(inner),
                                    expected=("fieldLookup", "parameterReference"))
            tree = inner
        position = tree.get("position")
        if position != 1 or isinstance(position, bool):
            raise JsonTreeError("parameterReference position must be 1 (the profile)", f"{pointer}/position",
                                found=_shown(position), expected=("1",))
        segments.reverse()
        if not segments:
            return ast.FieldPath(ast.Root.PROFILE, (), "$1")
        return ast.FieldPath(ast.Root.PROFILE, tuple(segments))

    def _literal(self, tree: Json, pointer: str) -> ast.Expr:
        kind, value = tree.get("literalType"), tree.get("value")
        here = f"{pointer}/value"
        if kind == "String" and isinstance(value, str):
            return ast.StringLiteral(value)
        if kind == "Integer" and isinstance(value, int) and not isinstance(value, bool):
            return ast.NumberLiteral(value)
        if kind == "Double" and isinstance(value, int | float) and not isinstance(value, bool):
            return ast.NumberLiteral(float(value))
        if kind == "Boolean" and isinstance(value, bool):
            return ast.BooleanLiteral(value)
        if kind == "Null" and value is None:
            return ast.NullLiteral()
        if kind == "List" and isinstance(value, list):
            return ast.ArrayLiteral(tuple(self.node(item, f"{here}/{index}") for index, item in enumerate(value)))
        if kind not in LITERAL_TYPES:
            raise JsonTreeError("unknown literalType", f"{pointer}/literalType", found=_shown(kind),
                                expected=LITERAL_TYPES)
        raise JsonTreeError(f"literalType {kind} cannot hold this value", here, found=_shown(value))

    def _apply(self, tree: Json, pointer: str) -> ast.Expr:
        name, params = tree.get("fnName"), tree.get("params", [])
        if not isinstance(name, str):
            raise JsonTreeError("fnApply needs an fnName (a string)", f"{pointer}/fnName", found=_shown(name))
        if not isinstance(params, list):
            raise JsonTreeError("fnApply params must be a list of nodes", f"{pointer}/params", found=_kind(params))
        if name == "occurs":
            self._arity(name, params, 2, 2, pointer)
            return ast.Occurs(self.node(params[0], f"{pointer}/params/0"),
                              self._window(params[1], f"{pointer}/params/1"))
        raw = list(params)
        try:
            return self._build(name, raw, pointer)
        except ast.InvalidNode as problem:
            raise JsonTreeError(problem.message, pointer, found=name) from None

    def _build(self, name: str, raw: list[object], pointer: str) -> ast.Expr:
        def args() -> list[ast.Expr]:
            return [self.node(item, f"{pointer}/params/{index}") for index, item in enumerate(raw)]

        if name in _COMPARE:
            self._arity(name, raw, 2, 2, pointer)
            left, right = args()
            return ast.Compare(_COMPARE[name], left, right)
        if name in ("and", "or"):
            cls: type[ast.And] | type[ast.Or] = ast.And if name == "and" else ast.Or
            flat: list[ast.Expr] = []
            for operand in args():  # nested and/or flatten, as the parser does
                flat.extend(operand.operands if isinstance(operand, cls) else (operand,))
            return cls(tuple(flat))
        if name == "-" and len(raw) == 1:
            (operand,) = args()
            if isinstance(operand, ast.NumberLiteral):
                return ast.NumberLiteral(-operand.value)
            return ast.Negate(operand)
        if name in _ARITH:
            self._arity(name, raw, 2, 2, pointer)
            left, right = args()
            return ast.Arithmetic(_ARITH[name], left, right)
        fixed = _FIXED.get(name)
        if fixed is not None:
            self._arity(name, raw, fixed[0], fixed[0], pointer)
            return fixed[1](args())
        if name in _AGGREGATES:
            self._arity(name, raw, 1, 1, pointer)
            return ast.Aggregate(_AGGREGATES[name], args()[0])
        if name in _CURRENT:
            self._arity(name, raw, 0, 0, pointer)
            return ast.CurrentTime(_CURRENT[name])
        if name in ("date", "datetime", "duration", "inSegment"):
            return self._special(name, raw, pointer)
        sig = functions.FUNCTIONS.get(name)
        if name in _ITEM_FUNCTIONS or (name == "exists" and len(raw) != 1):
            raise JsonTreeError(f"{name} with an item expression cannot be read from pql/json: {_NO_JSON_FORM}",
                                f"{pointer}/fnName", found=name)
        if sig is None or "Call" not in sig.node.split("|"):
            raise JsonTreeError("unknown fnName", f"{pointer}/fnName", found=name,
                                expected=("an operator, a PQL function name, occurs, date, datetime, duration, "
                                          "inSegment",))
        values = args()
        if sig.receiver is None:
            return ast.Call(name, None, tuple(values))
        if not values:
            raise JsonTreeError(f"{name} needs the value it applies to as its first param", f"{pointer}/params",
                                found="[]")
        return ast.Call(name, values[0], tuple(values[1:]))

    def _special(self, name: str, raw: list[object], pointer: str) -> ast.Expr:
        strings = [_plain(item, "String") for item in raw]
        integers = [_plain(item, "Integer") for item in raw]
        if name == "inSegment" and len(raw) in (1, 2) and all(isinstance(s, str) for s in strings):
            return ast.InSegment(str(strings[-1]), str(strings[0]) if len(raw) == 2 else "ups")
        if name == "date" and len(raw) == 1 and isinstance(strings[0], str):
            try:
                return ast.DateLiteral(dt.date.fromisoformat(strings[0]))
            except ValueError:
                raise JsonTreeError('not a valid date (write "YYYY-MM-DD")', f"{pointer}/params/0/value",
                                    found=strings[0]) from None
        parts = [i for i in integers if isinstance(i, int)]
        if name == "date" and len(raw) == 3 and len(parts) == 3:
            try:
                return ast.DateLiteral(dt.date(parts[0], parts[1], parts[2]))
            except ValueError as problem:
                raise JsonTreeError(f"not a valid date: {problem}", f"{pointer}/params", found=str(parts)) from None
        if name == "datetime" and len(raw) == 1 and isinstance(strings[0], str):
            text = strings[0].replace("Z", "+00:00").replace("z", "+00:00")
            try:
                value = dt.datetime.fromisoformat(text)
            except ValueError:
                raise JsonTreeError("not a valid date and time (write ISO 8601)", f"{pointer}/params/0/value",
                                    found=strings[0]) from None
            value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
            return ast.DateTimeLiteral(value)
        if name == "duration" and len(raw) == 2 and isinstance(integers[0], int) and strings[1] in _UNITS:
            return ast.Duration(integers[0], _UNITS[str(strings[1])])
        raise JsonTreeError(f"{name} takes {_SPECIAL_PARAMS[name]}", f"{pointer}/params", found=_kind(raw))

    def _window(self, tree: object, pointer: str) -> ast.TimeWindow:
        if not isinstance(tree, dict) or tree.get("nodeType") != "fnApply" or tree.get("fnName") not in _WINDOW_NAMES:
            found = tree.get("fnName") if isinstance(tree, dict) else None
            raise JsonTreeError("occurs needs a time window as its second param", pointer,
                                found=_shown(found) if found is not None else _node_type(tree),
                                expected=tuple(f"fnApply {name}" for name in _WINDOW_NAMES))
        name, raw = str(tree["fnName"]), tree.get("params", [])
        raw = raw if isinstance(raw, list) else []
        try:
            if name in ("this", "last", "next") and len(raw) == 1 and _plain(raw[0], "String") in _UNITS:
                return ast.PeriodWindow(ast.PeriodRelation(name), _UNITS[str(_plain(raw[0], "String"))])
            anchors = [self._anchor(name, item, f"{pointer}/params/{index}") for index, item in enumerate(raw)]
            if name in ("before", "after") and len(raw) == 1:
                return ast.PointWindow(ast.Direction(name), anchors[0])
            if name in ("before", "after") and len(raw) == 3:
                op, duration = _plain(raw[0], "String"), anchors[1]
                if op in _COMPARE and isinstance(duration, ast.Duration):
                    return ast.RelativeWindow(_COMPARE[str(op)], duration.amount, duration.unit,
                                              ast.Direction(name), anchors[2])
            if name == "on" and len(raw) == 1:
                return ast.OnWindow(anchors[0])
            if name == "between" and len(raw) == 2:
                return ast.BetweenWindow(anchors[0], anchors[1])
        except ast.InvalidNode as problem:
            raise JsonTreeError(problem.message, pointer, found=name) from None
        raise JsonTreeError(f"the {name} window takes {_WINDOW_PARAMS[name]}", f"{pointer}/params", found=_kind(raw))

    def _anchor(self, window: str, tree: object, pointer: str) -> ast.Expr:
        """A window's param; under before/after a calendar period (``this month``) is the time: its start, or
        after it its end (``ast.PeriodEdge``)."""
        if window in ("before", "after") and isinstance(tree, dict) and tree.get("nodeType") == "fnApply" \
                and tree.get("fnName") in ("this", "last", "next"):
            raw = tree.get("params", [])
            if isinstance(raw, list) and len(raw) == 1 and _plain(raw[0], "String") in _UNITS:
                relation = ast.PeriodRelation(str(tree["fnName"]))
                return ast.PeriodEdge(relation, _UNITS[str(_plain(raw[0], "String"))], window == "after")
        return self.node(tree, pointer)

    @staticmethod
    def _arity(name: str, raw: list[object], low: int, high: int, pointer: str) -> None:
        if not low <= len(raw) <= high:
            count = f"{low}" if low == high else f"{low} to {high}"
            raise JsonTreeError(f"{name} takes {count} params", f"{pointer}/params", found=f"{len(raw)} params")


_FIXED: dict[str, tuple[int, Callable[[list[ast.Expr]], ast.Expr]]] = {
    "not": (1, lambda p: ast.Not(p[0])),
    "in": (2, lambda p: ast.In(p[0], p[1])),
    "notIn": (2, lambda p: ast.In(p[0], p[1], negated=True)),
    "like": (2, lambda p: ast.Like(p[0], p[1])),
    "if": (3, lambda p: ast.If(p[0], p[1], p[2])),
}
_SPECIAL_PARAMS = {
    "inSegment": "one or two String literals (the namespace, then the segment id)",
    "date": "one String literal (YYYY-MM-DD) or three Integer literals (year, month, day)",
    "datetime": "one String literal (ISO 8601)",
    "duration": "an Integer literal and a String literal naming a unit (day, hour, ...)",
}
_WINDOW_PARAMS = {
    "before": "one anchor, or a String comparison operator, a duration and an anchor",
    "after": "one anchor, or a String comparison operator, a duration and an anchor",
    "on": "one anchor", "between": "two anchors",
    "this": "a String literal naming a unit", "last": "a String literal naming a unit",
    "next": "a String literal naming a unit",
}


def _plain(item: object, literal_type: str) -> object:
    """The value of a literal node of ``literal_type`` (None for anything else)."""
    if isinstance(item, dict) and item.get("nodeType") == "literal" and item.get("literalType") == literal_type:
        value = item.get("value")
        if literal_type == "Integer" and (isinstance(value, bool) or not isinstance(value, int)):
            return None
        return value
    return None


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def _shown(value: object) -> str:
    return json.dumps(value) if isinstance(value, str | int | float | bool) or value is None else _kind(value)


def _node_type(tree: object) -> str:
    if isinstance(tree, dict):
        return _shown(tree.get("nodeType"))
    return _kind(tree)
