"""The parser's plumbing: a token cursor, variable scopes, error construction and recovery."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from openseg.pql import ast
from openseg.pql.errors import PqlError
from openseg.pql.limits import MAX_NESTING
from openseg.pql.tokens import Kind, Scanner, Token

T = TypeVar("T")

# Words that never start a field path: a bare `and` where a value is expected is a mistake, not a field.
# (Backticks name a field spelled like one: `in`.)
RESERVED = frozenset(
    {"and", "or", "not", "in", "notin", "like", "occurs", "from", "where", "between", "before", "after", "on",
     "within", "then", "else"}
)

UNITS: dict[str, ast.TimeUnit] = {}
for _unit in ast.TimeUnit:
    UNITS[_unit.value] = _unit
    UNITS[_unit.value + "s"] = _unit
UNITS["centuries"] = ast.TimeUnit.CENTURY
UNITS["millennia"] = ast.TimeUnit.MILLENNIUM
UNITS.pop("centurys")
UNITS.pop("millenniums")


@dataclass
class Scope:
    """One level of name binding.

    Attributes:
        item: Bare paths here are fields of the current item (inside ``xEvent[...]``, ``.any(...)``...).
        variables: Names bound here and the root they stand for.
        values: Names bound by ``let`` here and the expression each stands for.
    """

    item: bool
    variables: dict[str, ast.Root] = field(default_factory=dict)
    values: dict[str, ast.Expr] = field(default_factory=dict)
    #: The name ``^`` from an inner filter gave this filter's item (filter-functions.md's up operator).
    up: str | None = None
    #: Whether ``^`` may name this scope's item (only ``array[condition]`` filters say so).
    filter: bool = False
    #: A ``let`` scope: it binds values, not a level ``^`` counts.
    let: bool = False


class ParserBase:
    """Token cursor, scopes and errors shared by the grammar modules."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = Scanner(text).tokens()
        self.i = 0
        self.depth = 0
        self.scopes: list[Scope] = [Scope(item=False)]
        self.errors: list[PqlError] = []
        # Names of the steps of the chain whose WHEN clause is being parsed (StepRef anchors).
        self.step_names: frozenset[str] = frozenset()

    # -- cursor ------------------------------------------------------------------------------------

    def peek(self, ahead: int = 0) -> Token:
        """The token ``ahead`` positions from the cursor (EOF when past the end)."""
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        """Consume and return the current token."""
        token = self.peek()
        if token.kind is not Kind.EOF:
            self.i += 1
        return token

    @property
    def last_end(self) -> int:
        """Offset one past the last consumed token."""
        return self.tokens[self.i - 1].span.end if self.i else 0

    def span_from(self, start: Token | ast.Span) -> ast.Span:
        """A span from ``start`` to the end of the last consumed token."""
        first = start.span if isinstance(start, Token) else start
        return ast.Span(first.start, max(self.last_end, first.end), first.line, first.col)

    def expect_op(self, op: str, what: str | None = None) -> Token:
        """Consume the operator ``op`` or fail naming it."""
        if not self.peek().is_op(op):
            raise self.error_here(f"'{op}'" if what is None else what)
        return self.advance()

    def expect_word(self, *words: str) -> Token:
        """Consume one of the keywords ``words`` or fail naming them."""
        if not self.peek().is_word(*words):
            raise self.error_here(_either(f"'{w}'" for w in words))
        return self.advance()

    def expect_name(self, what: str) -> Token:
        """Consume an identifier (a field, variable or step name)."""
        if self.peek().kind is not Kind.IDENT:
            raise self.error_here(what)
        return self.advance()

    def nested(self, parse: Callable[[], T]) -> T:
        """Run ``parse`` one bracket or ``not`` deeper; beyond ``MAX_NESTING`` that is an error, before
        the recursion can exhaust the stack."""
        if self.depth >= MAX_NESTING:
            raise self.error_at(self.peek(), f"the expression is nested too deeply: at most {MAX_NESTING} "
                                             "brackets, conditions or 'not's within one another")
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    # -- scopes ------------------------------------------------------------------------------------

    def scoped(self, scope: Scope, parse: Callable[[], T]) -> T:
        """Run ``parse`` with ``scope`` pushed."""
        self.scopes.append(scope)
        try:
            return parse()
        finally:
            self.scopes.pop()

    def resolve(self, name: str) -> ast.Root | ast.Expr | None:
        """What a bound name stands for, innermost binding first: the root of a variable, the expression of
        a ``let``; None when unbound."""
        for index in range(len(self.scopes) - 1, -1, -1):
            scope = self.scopes[index]
            if name in scope.variables:
                return scope.variables[name]
            if name in scope.values:
                value = scope.values[name]
                inner = any(s.item for s in self.scopes[index + 1:])
                if inner and any(isinstance(n, ast.FieldPath) and n.root is ast.Root.ITEM for n in value.walk()):
                    written = self.tokens[max(self.i - 1, 0)]  # the name, just consumed
                    raise self.error_at(written, f"{name} reads a field of the current item, so it cannot be used "
                                                 "inside a condition on another list")
                return value
        return None

    @property
    def in_item(self) -> bool:
        """Whether bare paths are item-relative here."""
        return self.scopes[-1].item

    # -- errors ------------------------------------------------------------------------------------

    def error_at(self, token: Token, message: str, expected: Iterable[str] = ()) -> PqlError:
        """A located error at ``token``."""
        return PqlError(
            message,
            line=token.span.line,
            col=token.span.col,
            found=token.shown(),
            expected=tuple(expected),
            source=self.text,
            offset=token.span.start,
            end_offset=token.span.end,
        )

    def error_here(self, expected: str, *more: str) -> PqlError:
        """"expected X, found Y" at the current token."""
        token = self.peek()
        wanted = (expected, *more)
        return self.error_at(token, f"expected {_either(wanted)}, found {token.shown()}", wanted)

    def error_span(self, span: ast.Span, message: str) -> PqlError:
        """A located error covering ``span``."""
        return PqlError(
            message,
            line=span.line,
            col=span.col,
            found=self.text[span.start : span.end] or "end of input",
            source=self.text,
            offset=span.start,
            end_offset=span.end,
        )

    def build(self, make: Callable[[], T]) -> T:
        """Construct a node, turning its validation error into one that shows the source."""
        try:
            return make()
        except ast.InvalidNode as error:
            error.with_source(self.text)
            if error.offset is not None and error.end_offset is not None:
                error.found = self.text[error.offset : error.end_offset] or "end of input"
            raise

    def recovering(self, parse: Callable[[], ast.Expr]) -> ast.Expr:
        """Parse an and/or operand; on error record it, skip to the next and/or, and go on.

        This is what lets one pass report several mistakes (sqlglot's ``ErrorLevel.RAISE``): the
        placeholder returned is never seen, because ``parse`` raises once any error was recorded.
        """
        try:
            return parse()
        except PqlError as error:
            if not any(known.offset == error.offset for known in self.errors):
                self.errors.append(error)
            self._synchronise()
            return ast.NullLiteral(span=self.peek().span)

    def _synchronise(self) -> None:
        depth = 0
        while self.peek().kind is not Kind.EOF:
            token = self.peek()
            if token.is_op("(", "["):
                depth += 1
            elif token.is_op(")", "]"):
                if depth == 0:
                    return
                depth -= 1
            elif depth == 0 and token.is_word("and", "or"):
                return
            self.advance()

    def suggest(self, name: str, candidates: Iterable[str]) -> str:
        """`` (did you mean X?)`` for the closest candidate, or an empty string."""
        matches = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
        if not matches:
            lowered = {c.lower(): c for c in candidates}
            if name.lower() in lowered:
                matches = [lowered[name.lower()]]
        return f" (did you mean {matches[0]}?)" if matches else ""

    def starts_expression(self, token: Token) -> bool:
        """Whether ``token`` can begin a value (used where an anchor is optional)."""
        if token.kind in (Kind.STRING, Kind.NUMBER, Kind.PARAM):
            return True
        if token.kind is Kind.IDENT:
            return token.quoted or token.text.lower() not in RESERVED
        return token.is_op("(", "[", "-")


def _either(words: Iterable[str]) -> str:
    items = list(words)
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " or " + items[-1]
