"""The PQL parser: a hand-written precedence-climbing parser producing the typed AST.

Hand-written rather than a lark grammar so every error names, in plain words, what was expected at the
exact line and column (``expected an expression, found end of input``), and so scoping (which root a
bare path has) is resolved while parsing. Precedence, loosest first::

    lambda      (Profile) => expr            top level only
    or          a or b
    and         a and b
    not         not a
    comparison  = != < <= > >=, in, notIn, like, occurs <window>    (non-associative)
    additive    + -
    term        * / %
    unary       -x
    power       a ^ b                        (right-associative; -a ^ b is -(a ^ b))
    postfix     a.b, a.f(args), a[condition]
    primary     literals, paths, f(args), (expr), [items], exists/forall/select, 3 days
"""

from __future__ import annotations

from collections.abc import Callable

from openseg.pql import _sugar, ast
from openseg.pql._parser_base import RESERVED, UNITS, Scope
from openseg.pql._special_forms import _COMPARE, _TIMES, AGGREGATE_WORDS, SpecialForms
from openseg.pql.errors import PqlError, PqlErrors
from openseg.pql.limits import check_depth
from openseg.pql.tokens import Kind, Token

_ARITH = {"+": ast.ArithOp.ADD, "-": ast.ArithOp.SUB, "*": ast.ArithOp.MUL, "/": ast.ArithOp.DIV,
          "%": ast.ArithOp.MOD, "^": ast.ArithOp.POW}
_LITERAL_WORDS = {"true": True, "false": False}


def parse(text: str) -> ast.Expr:
    """Parse PQL text (``pql/text``) into an expression tree.

    Args:
        text: The expression, e.g. ``homeAddress.country = "US"``.

    Returns:
        The root expression node.

    Raises:
        PqlError: The text is not valid PQL; when several problems were found the error is a
            ``PqlErrors`` whose ``errors`` lists each (the first is the error itself).
    """
    return Parser(text).parse()


class Parser(SpecialForms):
    """Parses one expression; use :func:`parse`."""

    def parse(self) -> ast.Expr:
        """Parse the whole text, reporting every error found."""
        if self.peek().kind is Kind.EOF:
            raise self.error_here("an expression")
        try:
            expr = self._top()
            if self.peek().kind is not Kind.EOF and not self.errors:
                raise self.error_here("'and'", "'or'", "the end of the expression")
        except PqlError as error:
            if not any(known.offset == error.offset for known in self.errors):
                self.errors.append(error)
        if len(self.errors) == 1:
            raise self.errors[0].with_source(self.text)
        if self.errors:
            raise PqlErrors([error.with_source(self.text) for error in self.errors])
        check_depth(expr, self.text)
        listed = _sugar.unconsumed_projection(expr)
        if listed is not None:
            shown = self.text[listed.span.start:listed.span.end]
            raise self.error_span(listed.span, f"{shown} is a value of each event, which can be compared "
                                               "(xEvent.a > 0: some event has it), tested or aggregated "
                                               "(xEvent.a.sum()); for more, write exists E from xEvent where E.a ...")
        return expr

    def _top(self) -> ast.Expr:
        # `(Profile) => body` or `Profile => body`: the parameter names the profile.
        start = self.peek()
        if start.is_op("(") and self.peek(1).kind is Kind.IDENT and self.peek(2).is_op(")") and self.peek(3).is_op("=>"):
            name = self.peek(1).text
            self.i += 4
        elif start.kind is Kind.IDENT and self.peek(1).is_op("=>"):
            name = start.text
            self.i += 2
        else:
            return self.expr()
        body = self.scoped(Scope(item=False, variables={name: ast.Root.PROFILE}), self.expr)
        return self.build(lambda: ast.Lambda((name,), body, span=self.span_from(start)))

    # -- boolean -----------------------------------------------------------------------------------

    def expr(self) -> ast.Expr:
        """A full expression (``or`` level)."""
        return self.nested(lambda: self._nary("or", ast.Or, self._and))

    def _and(self) -> ast.Expr:
        return self._nary("and", ast.And, self._not)

    def _nary(self, word: str, cls: type[ast.And | ast.Or], operand: Callable[[], ast.Expr]) -> ast.Expr:
        first = self.recovering(operand)
        operands = [first]
        while self.peek().is_word(word):
            self.advance()
            operands.append(self.recovering(operand))
        if len(operands) == 1:
            return first
        flat: list[ast.Expr] = []
        for item in operands:
            # `a or (b or c)` means the same as `a or b or c`; one flat node keeps backends simple.
            flat.extend(item.operands if isinstance(item, cls) else (item,))
        span = first.span.to(operands[-1].span)
        return self.build(lambda: cls(tuple(flat), span=span))

    def _not(self) -> ast.Expr:
        token = self.peek()
        if token.is_word("not") or token.is_op("!"):
            self.advance()
            operand = self.nested(self._not)
            return ast.Not(operand, span=self.span_from(token))
        return self._comparison()

    # -- comparison --------------------------------------------------------------------------------

    def _comparison(self) -> ast.Expr:
        # A comparison on a value of each event (`xEvent.a > 0`) means that some event has it (_sugar).
        return _sugar.some_event(self._plain_comparison())

    def _plain_comparison(self) -> ast.Expr:
        left = self.additive()
        token = self.peek()
        if token.kind is Kind.OP and token.text in _COMPARE:
            self.advance()
            right = self.additive()
            return self.build(lambda: ast.Compare(_COMPARE[token.text], left, right, span=left.span.to(right.span)))
        if token.is_word("in", "notin"):
            self.advance()
            values = self.additive()
            negated = token.text.lower() == "notin"
            return self.build(lambda: ast.In(left, values, negated, span=left.span.to(values.span)))
        if token.is_word("like"):
            self.advance()
            pattern = self.additive()
            return self.build(lambda: ast.Like(left, pattern, span=left.span.to(pattern.span)))
        if token.is_word("occurs"):
            self.advance()
            window = self.window()
            return self.build(lambda: ast.Occurs(left, window, span=left.span.to(window.span)))
        return left

    # -- arithmetic --------------------------------------------------------------------------------

    def additive(self) -> ast.Expr:
        """``a + b - c`` (left-associative)."""
        left = self._term()
        while self.peek().is_op("+", "-"):
            op = _ARITH[self.advance().text]
            right = self._term()
            left = ast.Arithmetic(op, left, right, span=left.span.to(right.span))
        return left

    def _term(self) -> ast.Expr:
        left = self._unary()
        while self.peek().is_op("*", "/", "%"):
            op = _ARITH[self.advance().text]
            right = self._unary()
            left = ast.Arithmetic(op, left, right, span=left.span.to(right.span))
        return left

    def _unary(self) -> ast.Expr:
        token = self.peek()
        if token.is_op("-"):
            self.advance()
            operand = self.nested(self._unary)
            span = self.span_from(token)
            if isinstance(operand, ast.NumberLiteral):
                return ast.NumberLiteral(-operand.value, span=span)
            return ast.Negate(operand, span=span)
        return self._power()

    def _power(self) -> ast.Expr:
        base = self.postfix()
        if not self.peek().is_op("^"):
            return base
        self.advance()
        exponent = self.nested(self._unary)
        return ast.Arithmetic(ast.ArithOp.POW, base, exponent, span=base.span.to(exponent.span))

    # -- postfix -----------------------------------------------------------------------------------

    def postfix(self) -> ast.Expr:
        """A primary followed by ``.field``, ``.method(args)`` and ``[condition]``."""
        node = self._primary()
        while True:
            token = self.peek()
            if token.is_op("."):
                self.advance()
                name = self.expect_name("a field or function name after '.'")
                node = self.method(node, name) if self.peek().is_op("(") else self._field(node, name)
            elif token.is_op("["):
                self.advance()
                scope = Scope(item=True, filter=True)
                condition = self.scoped(scope, self.expr)
                self.expect_op("]", "']' closing the condition")
                span = node.span.to(self.span_from(token))
                if scope.up is None:
                    node = ast.EventFilter(node, condition, span=span)
                else:
                    # An inner `^.f` read this filter's item: name it, `select UP from node where ...`.
                    node = ast.Select(scope.up, node, _sugar.item_as_variable(condition, scope.up), span=span)
            else:
                return node

    def _field(self, node: ast.Expr, name: Token) -> ast.Expr:
        if isinstance(node, ast.FieldPath) and node.root is not ast.Root.EVENTS:
            return ast.FieldPath(node.root, (*node.segments, name.text), node.name, span=node.span.to(name.span))
        span = node.span.to(name.span)
        if _sugar.is_event_list(node):
            # `xEvent.a`: the field a of each event (AEP's shorthand; see _sugar).
            return _sugar.project(node, ast.FieldPath(ast.Root.ITEM, (name.text,), span=name.span), span)
        projected = _sugar.projection(node)
        if projected is not None and isinstance(projected[1], ast.FieldPath):
            item = projected[1]
            path = ast.FieldPath(ast.Root.ITEM, (*item.segments, name.text), span=item.span.to(name.span))
            return _sugar.project(projected[0], path, span)
        raise self.error_at(name, f"cannot read field {name.text} of a computed value; "
                                  f"only fields of the profile, events and variables can be read")

    # -- primary -----------------------------------------------------------------------------------

    def _primary(self) -> ast.Expr:
        token = self.peek()
        if token.kind is Kind.STRING:
            self.advance()
            return ast.StringLiteral(token.text, span=token.span)
        if token.kind is Kind.NUMBER:
            return self._number()
        if token.kind is Kind.PARAM:
            self.advance()
            return ast.FieldPath(ast.Root.PROFILE, (), "$1", span=token.span)
        if token.is_op("("):
            self.advance()
            inner = self.expr()
            self.expect_op(")", "')' closing the parenthesis")
            return inner
        if token.is_op("["):
            return self._array()
        if token.kind is Kind.IDENT:
            return self._word(token)
        if token.is_op("^"):
            return self._up()
        raise self.error_here("an expression")

    def _up(self) -> ast.Expr:
        """``^.f`` / ``^f`` (filter-functions.md's up operator): a field one filter level up; ``^^`` two.

        Levels are the enclosing ``[condition]`` filters, quantifier variables, lambdas and the item arguments of
        functions (``.any(...)``, aggregates, ``map`` ...), innermost first;
        one level beyond the outermost is the profile (``xEvent[productListItems[SKU = "PS" or
        ^^.person.gender = "female"]]``).
        """
        start = self.peek()
        levels = 0
        while self.peek().is_op("^"):
            self.advance()
            levels += 1
        if self.peek().is_op("."):
            self.advance()
        name = self.expect_name("a field name after '^'")
        span = self.span_from(start)
        enclosing = [scope for scope in reversed(self.scopes[1:]) if (scope.item or scope.variables) and not scope.let]
        if levels == len(enclosing):
            # Spelled `$1` so that the path reads as the profile's inside an item condition, written back too.
            return ast.FieldPath(ast.Root.PROFILE, (name.text,), "$1", span=span)
        if levels > len(enclosing):
            above = len(enclosing)
            if not above:
                raise self.error_span(span, "'^' reads a field of an enclosing filter's item, but this is not "
                                            "inside a filter: write the profile's field without '^'")
            raise self.error_span(span, f"'{'^' * levels}' goes {levels} levels up, but there "
                                        f"{'is only 1 level' if above == 1 else f'are only {above} levels'} "
                                        "above it (the last is the profile)")
        target = enclosing[levels]
        if target.variables:
            variable, root = next(iter(target.variables.items()))
            if root is ast.Root.PROFILE:
                return ast.FieldPath(ast.Root.PROFILE, (name.text,), variable, span=span)
            return ast.FieldPath(ast.Root.VARIABLE, (name.text,), variable, span=span)
        if not target.filter:
            raise self.error_span(span, "'^' cannot be used in a chain's time field: it is a field of each event, "
                                        "e.g. timestamp")
        if target.up is None:
            target.up = f"UP{sum(1 for scope in self.scopes if scope.up is not None) + 1}"
        return ast.FieldPath(ast.Root.VARIABLE, (name.text,), target.up, span=span)

    def _number(self) -> ast.Expr:
        token = self.advance()
        value: int | float = int(token.text) if token.text.isdigit() else float(token.text)
        unit = self.peek()
        if isinstance(value, int) and unit.kind is Kind.IDENT and not unit.quoted and unit.text.lower() in UNITS:
            self.advance()
            return ast.Duration(value, UNITS[unit.text.lower()], span=self.span_from(token))
        return ast.NumberLiteral(value, span=token.span)

    def _array(self) -> ast.Expr:
        start = self.advance()
        items: list[ast.Expr] = []
        if not self.peek().is_op("]"):
            while True:
                items.append(self.expr())
                if not self.peek().is_op(","):
                    break
                self.advance()
        self.expect_op("]", "',' or ']'")
        return ast.ArrayLiteral(tuple(items), span=self.span_from(start))

    def _word(self, token: Token) -> ast.Expr:
        word, after = token.text.lower(), self.peek(1)
        if token.quoted:
            return self._path_start(token)
        if after.is_op("("):
            self.advance()
            return self.function(token)
        if word in _LITERAL_WORDS:
            self.advance()
            return ast.BooleanLiteral(_LITERAL_WORDS[word], span=token.span)
        if word == "null":
            self.advance()
            return ast.NullLiteral(span=token.span)
        if word in ("exists", "forall", "select") and after.kind is Kind.IDENT and self.peek(2).is_word("from", "in"):
            self.advance()
            return self.quantifier(token)
        if word == "let" and after.kind is Kind.IDENT and self.peek(2).is_op("="):
            return self.let(token)
        if word in AGGREGATE_WORDS and after.kind is Kind.IDENT and self.over_ahead() is not None:
            return self.aggregate_over(token)
        if word in _TIMES and not after.is_op("."):
            self.advance()
            return ast.CurrentTime(_TIMES[word], span=token.span)
        if token.text in self.step_names and not after.is_op("."):
            self.advance()
            return ast.StepRef(token.text, span=token.span)
        if word in RESERVED:
            raise self.error_here("an expression")
        return self._path_start(token)

    def _path_start(self, token: Token) -> ast.Expr:
        self.advance()
        name = token.text
        bound = self.resolve(name)
        if isinstance(bound, ast.Expr):
            return bound  # a `let` name stands for its expression
        if bound is not None:
            return ast.FieldPath(bound, (), name, span=token.span)
        if name == "xEvent" and not token.quoted:
            return ast.FieldPath(ast.Root.EVENTS, (), "xEvent", span=token.span)
        root = ast.Root.ITEM if self.in_item else ast.Root.PROFILE
        return ast.FieldPath(root, (name,), span=token.span)
