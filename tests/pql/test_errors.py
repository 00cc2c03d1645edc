"""Parse errors are data: exact messages, positions, found/expected, and the rendered snippet."""

from __future__ import annotations

import pytest

from openseg.pql import PqlError, PqlErrors, parse


def error_of(text: str) -> PqlError:
    with pytest.raises(PqlError) as caught:
        parse(text)
    return caught.value


def test_dangling_and_points_one_past_the_end() -> None:
    error = error_of('homeAddress.country = "US" and')
    assert (error.line, error.col) == (1, 31)
    assert error.message == "expected an expression, found end of input"
    assert error.found == "end of input"
    assert error.expected == ("an expression",)
    assert str(error) == (
        "line 1, col 31: expected an expression, found end of input\n"
        'homeAddress.country = "US" and\n'
        "                              ^"
    )
    assert error.to_dict() == {
        "message": "expected an expression, found end of input",
        "line": 1,
        "col": 31,
        "found": "end of input",
        "expected": ["an expression"],
    }


SNAPSHOTS = [
    ("", 1, 1, "expected an expression, found end of input"),
    ('x = "US', 1, 5, "unterminated string"),
    ("x = 1 2", 1, 7, "expected 'and', 'or' or the end of the expression, found 2"),
    ("x = (1", 1, 7, "expected ')' closing the parenthesis, found end of input"),
    ("x.sartsWith(\"a\")", 1, 3, "unknown function sartsWith (did you mean startsWith?)"),
    ('x.startsWith("a", true, 3)', 1, 3, "startsWith takes 1 to 2 arguments, not 3"),
    ('startsWith(x, "a")', 1, 1, 'startsWith is not a function: see `personalEmail.address.startsWith("john")`'),
    ("x like", 1, 7, "expected an expression, found end of input"),
    ("d occurs soon", 1, 10, ("expected a time window such as '<= 7 days before now', 'before', 'after', "
                             "'between', 'on', 'this month' or 'in last 7 days', found soon")),
    ("d occurs < 3 parsecs before now", 1, 14, "expected a time unit such as days, weeks or months, found parsecs"),
    ("d occurs < 3 days around now", 1, 19, "expected 'before', 'after' or 'from', found around"),
    ('d = date("2020-13-01")', 1, 10, 'not a valid date: "2020-13-01" (write "YYYY-MM-DD")'),
    ("xEvent.eventType.name.lower().x = 1", 1, 31, ("cannot read field x of a computed value; only fields of the "
                                                  "profile, events and variables can be read")),
    ('chain(xEvent, timestamp, [C0: WHAT(a = 1) WHEN(<= 1 day after C1), C1: WHAT(b = 1)])', 1, 63,
     "step C0 refers to C1, which is not an earlier step"),
    ('chain(xEvent, timestamp, [C0: WHAT(a = 1), C0: WHAT(b = 1)])', 1, 44, "chain step C0 is named twice"),
    ("x = $2", 1, 5, "unknown input reference $2; only $1 (the profile) exists"),
    ("x = 1 #", 1, 7, "unexpected character '#'"),
    ("inSegment(seg)", 1, 11, "expected a segment id in double quotes, found seg"),
    ("xEvent.count(eventType) > 1", 1, 8, "count takes no arguments, not 1"),
]


@pytest.mark.parametrize(("text", "line", "col", "message"), SNAPSHOTS, ids=[s[0] or "empty" for s in SNAPSHOTS])
def test_error_snapshots(text: str, line: int, col: int, message: str) -> None:
    error = error_of(text)
    assert (error.message, error.line, error.col) == (message, line, col)
    assert error.source == text


def test_errors_on_later_lines_have_their_line_and_column() -> None:
    error = error_of('homeAddress.country = "US"\nand loyalty.points >')
    assert (error.line, error.col) == (2, 21)
    assert error.snippet() == "and loyalty.points >\n                    ^"


def test_several_errors_are_collected_in_one_pass() -> None:
    error = error_of("a = and b = 1 and c <")
    assert isinstance(error, PqlErrors)
    assert [(e.col, e.message) for e in error.errors] == [
        (5, "expected an expression, found and"),
        (22, "expected an expression, found end of input"),
    ]
    assert [item["col"] for item in error.to_dict()["errors"]] == [5, 22]


def test_snippet_underlines_the_whole_token() -> None:
    assert error_of("x.sartsWith(1)").snippet() == "x.sartsWith(1)\n  ^^^^^^^^^"
