"""The parser builds the expected tree for every construct, and canonical text round-trips."""

from __future__ import annotations

import datetime as dt

import pytest

from openseg.pql import ast as a
from openseg.pql import parse, to_text

P, I, V, E = a.Root.PROFILE, a.Root.ITEM, a.Root.VARIABLE, a.Root.EVENTS
NOW = a.CurrentTime(a.CurrentTimeKind.NOW)
TODAY = a.CurrentTime(a.CurrentTimeKind.TODAY)
XEVENT = a.FieldPath(E, (), "xEvent")


def path(*segments: str, root: a.Root = P, name: str | None = None) -> a.FieldPath:
    return a.FieldPath(root, segments, name)


def s(value: str) -> a.StringLiteral:
    return a.StringLiteral(value)


def n(value: float) -> a.NumberLiteral:
    return a.NumberLiteral(value)


def eq(left: a.Expr, right: a.Expr) -> a.Compare:
    return a.Compare(a.CompareOp.EQ, left, right)


CASES: list[tuple[str, a.Expr]] = [
    ('homeAddress.country = "US"', eq(path("homeAddress", "country"), s("US"))),
    ('$1.homeAddress.country = "US"', eq(path("homeAddress", "country", name="$1"), s("US"))),
    ('(Profile) => Profile.homeAddress.country = "US"',
     a.Lambda(("Profile",), eq(path("homeAddress", "country", name="Profile"), s("US")))),
    ("loyalty.points >= 10.5", a.Compare(a.CompareOp.GE, path("loyalty", "points"), n(10.5))),
    ("loyalty.points != -3", a.Compare(a.CompareOp.NE, path("loyalty", "points"), n(-3))),
    ('a = true AND b = null Or not c = false',
     a.Or((a.And((eq(path("a"), a.BooleanLiteral(True)), eq(path("b"), a.NullLiteral()))),
           a.Not(eq(path("c"), a.BooleanLiteral(False)))))),
    ('x in ["US", "CA"]', a.In(path("x"), a.ArrayLiteral((s("US"), s("CA"))))),
    ("x notIn [1, 2]", a.In(path("x"), a.ArrayLiteral((n(1), n(2))), negated=True)),
    ('x like "Jo%"', a.Like(path("x"), s("Jo%"))),
    ("if(x = 1, 2, 3) = 2", eq(a.If(eq(path("x"), n(1)), n(2), n(3)), n(2))),
    ("a + b * c - 1 = 0",
     eq(a.Arithmetic(a.ArithOp.SUB, a.Arithmetic(a.ArithOp.ADD, path("a"),
                                                 a.Arithmetic(a.ArithOp.MUL, path("b"), path("c"))), n(1)), n(0))),
    ("-x % 2 = 1", eq(a.Arithmetic(a.ArithOp.MOD, a.Negate(path("x")), n(2)), n(1))),
    ('s.startsWith("a", false)', a.Call("startsWith", path("s"), (s("a"), a.BooleanLiteral(False)))),
    ("abs(x) = 1", eq(a.Call("abs", path("x")), n(1))),
    ('concat(a, " ", b) = "x y"', eq(a.Call("concat", None, (path("a"), s(" "), path("b"))), s("x y"))),
    ("d.getYear() = currentYear()", eq(a.Call("getYear", path("d")), a.Call("currentYear", None))),
    ('identityMap.containsKey("email")', a.Call("containsKey", path("identityMap"), (s("email"),))),
    ("p.isNull()", a.Call("isNull", path("p"))),
    ("p.exists()", a.Call("exists", path("p"))),
    ('d < date("2020-01-31")', a.Compare(a.CompareOp.LT, path("d"), a.DateLiteral(dt.date(2020, 1, 31)))),
    ("d < date(2020, 1, 31)", a.Compare(a.CompareOp.LT, path("d"), a.DateLiteral(dt.date(2020, 1, 31)))),
    ('d < datetime("2020-01-31T10:00:00+02:00")',
     a.Compare(a.CompareOp.LT, path("d"), a.DateTimeLiteral(dt.datetime(2020, 1, 31, 8, tzinfo=dt.UTC)))),
    ("d < now() - 3 days",
     a.Compare(a.CompareOp.LT, path("d"), a.Arithmetic(a.ArithOp.SUB, NOW, a.Duration(3, a.TimeUnit.DAY)))),
    ("d occurs < 30 days before now",
     a.Occurs(path("d"), a.RelativeWindow(a.CompareOp.LT, 30, a.TimeUnit.DAY, a.Direction.BEFORE, NOW))),
    ("d occurs < 7 days before",
     a.Occurs(path("d"), a.RelativeWindow(a.CompareOp.LT, 7, a.TimeUnit.DAY, a.Direction.BEFORE, NOW))),
    ('d occurs <= 7 days after date("2020-01-01")',
     a.Occurs(path("d"), a.RelativeWindow(a.CompareOp.LE, 7, a.TimeUnit.DAY, a.Direction.AFTER,
                                          a.DateLiteral(dt.date(2020, 1, 1))))),
    ("d occurs within 2 hours",
     a.Occurs(path("d"), a.RelativeWindow(a.CompareOp.LE, 2, a.TimeUnit.HOUR, a.Direction.BEFORE, NOW))),
    ("d OCCURS in last 7 days",
     a.Occurs(path("d"), a.RelativeWindow(a.CompareOp.LE, 7, a.TimeUnit.DAY, a.Direction.BEFORE, NOW))),
    ("d occurs before today", a.Occurs(path("d"), a.PointWindow(a.Direction.BEFORE, TODAY))),
    ('d occurs on date("2020-01-01")', a.Occurs(path("d"), a.OnWindow(a.DateLiteral(dt.date(2020, 1, 1))))),
    ("d occurs today", a.Occurs(path("d"), a.OnWindow(TODAY))),
    ('d occurs between date("2020-01-01") and date("2020-02-01") and x = 1',
     a.And((a.Occurs(path("d"), a.BetweenWindow(a.DateLiteral(dt.date(2020, 1, 1)), a.DateLiteral(dt.date(2020, 2, 1)))),
            eq(path("x"), n(1))))),
    ("d occurs this month", a.Occurs(path("d"), a.PeriodWindow(a.PeriodRelation.THIS, a.TimeUnit.MONTH))),
    ("d occurs last year", a.Occurs(path("d"), a.PeriodWindow(a.PeriodRelation.LAST, a.TimeUnit.YEAR))),
    ('xEvent[eventType = "x"].count() >= 3',
     a.Compare(a.CompareOp.GE, a.Aggregate(a.AggregateKind.COUNT, a.EventFilter(XEVENT, eq(path("eventType", root=I), s("x")))), n(3))),
    ("xEvent.sum(commerce.order.priceTotal) > 1",
     a.Compare(a.CompareOp.GT, a.Aggregate(a.AggregateKind.SUM, XEVENT, path("commerce", "order", "priceTotal", root=I)), n(1))),
    ("xEvent.average(v) > 1", a.Compare(a.CompareOp.GT, a.Aggregate(a.AggregateKind.AVG, XEVENT, path("v", root=I)), n(1))),
    ('EXISTS E from xEvent WHERE E.eventType = "x"', a.Exists("E", XEVENT, eq(path("eventType", root=V, name="E"), s("x")))),
    ('forall E in xEvent where E.eventType = "x"', a.ForAll("E", XEVENT, eq(path("eventType", root=V, name="E"), s("x")))),
    ('xEvent.any(eventType = "x")', a.Exists(None, XEVENT, eq(path("eventType", root=I), s("x")))),
    ('xEvent.all(e => e.eventType = "x")', a.ForAll("e", XEVENT, eq(path("eventType", root=V, name="e"), s("x")))),
    ('productListItems.exists(name.equals("Tent", false))',
     a.Exists(None, path("productListItems"), a.Call("equals", path("name", root=I), (s("Tent"), a.BooleanLiteral(False))))),
    ("select X from xEvent where X.v > 100",
     a.Select("X", XEVENT, a.Compare(a.CompareOp.GT, path("v", root=V, name="X"), n(100)))),
    ('inSegment("seg-1")', a.InSegment("seg-1")),
    ('inSegment("aam", "seg-1")', a.InSegment("seg-1", "aam")),
    ("segmentMembership.ups.`3f-1`.status = \"realized\"",
     eq(path("segmentMembership", "ups", "3f-1", "status"), s("realized"))),
    (('chain(xEvent, timestamp, [C0: WHAT(eventType = "a") WHEN(<= 3 days before now), '
     'C1: WHAT(eventType = "b") WHEN(<= 1 day after C0), C2: WHAT(eventType = "c") not])'),
     a.Chain(XEVENT, path("timestamp", root=I), (
         a.ChainStep("C0", eq(path("eventType", root=I), s("a")),
                     a.RelativeWindow(a.CompareOp.LE, 3, a.TimeUnit.DAY, a.Direction.BEFORE, NOW)),
         a.ChainStep("C1", eq(path("eventType", root=I), s("b")),
                     a.RelativeWindow(a.CompareOp.LE, 1, a.TimeUnit.DAY, a.Direction.AFTER, a.StepRef("C0"))),
         a.ChainStep("C2", eq(path("eventType", root=I), s("c")), None, negated=True)))),
    ('CHAIN(xEvent, timestamp, [A: WHAT(eventType = "a") WHEN(today)])',
     a.Chain(XEVENT, path("timestamp", root=I), (a.ChainStep("A", eq(path("eventType", root=I), s("a")), a.OnWindow(TODAY)),))),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_parses_to_the_expected_tree(text: str, expected: a.Expr) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_canonical_text_round_trips(text: str, expected: a.Expr) -> None:
    assert parse(to_text(parse(text))) == expected


def test_spans_locate_nodes_in_the_source() -> None:
    text = 'homeAddress.country = "US" and\n  loyalty.points > 3'
    tree = parse(text)
    assert isinstance(tree, a.And)
    second = tree.operands[1]
    assert (second.span.line, second.span.col) == (2, 3)
    assert text[second.span.start : second.span.end] == "loyalty.points > 3"


def test_nested_items_resolve_to_the_innermost_item() -> None:
    tree = parse('xEvent[productListItems.exists(name = "Tent")]')
    assert tree == a.EventFilter(XEVENT, a.Exists(None, path("productListItems", root=I), eq(path("name", root=I), s("Tent"))))


def test_strings_decode_escapes() -> None:
    assert parse(r'x = "say \"hi\"\n"') == eq(path("x"), s('say "hi"\n'))


def test_visitor_reports_unknown_nodes() -> None:
    class OnlyStrings(a.Visitor[str]):
        def visit_StringLiteral(self, node: a.StringLiteral) -> str:
            return node.value

    with pytest.raises(TypeError, match="OnlyStrings cannot handle Compare nodes"):
        OnlyStrings().visit(parse('x = "y"'))


def test_node_classes_lists_every_node() -> None:
    found = {cls for cls in vars(a).values() if isinstance(cls, type) and issubclass(cls, a.Node)}
    assert found - {a.Node, a.Expr, a.TimeWindow} == set(a.NODE_CLASSES)
