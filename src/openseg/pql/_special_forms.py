"""Grammar of PQL's special forms: calls and methods, literal functions, quantifiers, windows, chains."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from openseg.pql import _sugar, ast, functions
from openseg.pql._parser_base import UNITS, ParserBase, Scope
from openseg.pql.functions import ArgType, Form, Signature
from openseg.pql.tokens import Kind, Token

_COMPARE = {"=": ast.CompareOp.EQ, "==": ast.CompareOp.EQ, "!=": ast.CompareOp.NE, "<>": ast.CompareOp.NE,
            "<": ast.CompareOp.LT, "<=": ast.CompareOp.LE, ">": ast.CompareOp.GT, ">=": ast.CompareOp.GE}
_AGGREGATES = {kind.value: kind for kind in ast.AggregateKind}
_TIMES = {kind.value: kind for kind in ast.CurrentTimeKind}
_ITEM_ARGS = (ArgType.PREDICATE, ArgType.ITEM_VALUE)
#: Aggregates written `sum X.v over X from S where C` (misc-functions.md).
AGGREGATE_WORDS = frozenset({"sum", "average", "min", "max"})
#: Receivers of functions that apply to one value (not a list): on `xEvent.a` they apply to each event's a.
_SCALAR_RECEIVERS = frozenset({ArgType.ANY, ArgType.STRING, ArgType.INTEGER, ArgType.NUMBER, ArgType.BOOLEAN,
                               ArgType.TEMPORAL, ArgType.DATE, ArgType.DATETIME, ArgType.MAP})


class SpecialForms(ParserBase):
    """Special forms; the precedence core (``parser.Parser``) supplies the three entry points below."""

    expr: Callable[[], ast.Expr]
    additive: Callable[[], ast.Expr]
    postfix: Callable[[], ast.Expr]

    # -- arguments ---------------------------------------------------------------------------------

    def arguments(self, sig: Signature, receiver: bool) -> list[tuple[ast.Expr, str | None]]:
        """Parse ``( args )`` for ``sig``; item arguments bind their own scope (and lambda variable).

        Returns each argument with the lambda variable it bound (``x`` in ``.any(x => ...)``) or None.
        """
        self.expect_op("(")
        out: list[tuple[ast.Expr, str | None]] = []
        if not self.peek().is_op(")"):
            while True:
                index = len(out) + (0 if receiver or Form.FUNCTION not in sig.forms or sig.receiver is None else -1)
                param = _param(sig, index)
                if param is not None and param.type in _ITEM_ARGS:
                    out.append(self._item_argument())
                elif self._lambda_ahead():
                    raise self.error_at(self.peek(), f"{sig.name} takes no lambda (x => ...) here; lambdas go "
                                                     "to map, filter, topN, bottomN, groupBy, aggregates and quantifiers")
                else:
                    out.append((self.expr(), None))
                if not self.peek().is_op(","):
                    break
                self.advance()
        self.expect_op(")", "',' or ')'")
        return out

    def _lambda_ahead(self) -> bool:
        return (self.peek().kind is Kind.IDENT and self.peek(1).is_op("=>")) or (
            self.peek().is_op("(") and self.peek(1).kind is Kind.IDENT and self.peek(2).is_op(")")
            and self.peek(3).is_op("=>"))

    def _item_argument(self) -> tuple[ast.Expr, str | None]:
        # `x => body` or `(x) => body` (the overview's lambda notation): x names the item.
        if not self._lambda_ahead():
            scope = Scope(item=True, filter=True)
            value = self.scoped(scope, self.expr)
            if scope.up is None:
                return value, None
            # An inner `^.f` read this item (`xEvent.any(productListItems[^.eventType = "a"])`): name it, as the
            # lambda `UP1 => ...` would.
            return _sugar.item_as_variable(value, scope.up), scope.up
        parenthesised = self.peek().is_op("(")
        name = self.peek(1 if parenthesised else 0).text
        self.i += 4 if parenthesised else 2
        return self.scoped(Scope(item=False, variables={name: ast.Root.VARIABLE}), self.expr), name

    def _arity(self, sig: Signature, count: int, start: Token) -> None:
        if not sig.accepts(count):
            raise self.error_span(self.span_from(start), f"{sig.name} takes {sig.arity_text()}, not {count}")

    # -- methods: receiver.name(args) ---------------------------------------------------------------

    def method(self, receiver: ast.Expr, name_token: Token) -> ast.Expr:
        """Build the node for ``receiver.name(args)``."""
        sig = self._signature(name_token)
        if Form.METHOD not in sig.forms:
            how = "an infix operator" if Form.INFIX in sig.forms else "a function" if Form.FUNCTION in sig.forms \
                else "a keyword form"
            raise self.error_at(name_token, f"{sig.name} is {how}, not a method: see `{sig.example}`")
        args = self.arguments(sig, receiver=True)
        self._arity(sig, len(args), name_token)
        span = receiver.span.to(self.span_from(name_token))
        values = tuple(arg for arg, _ in args)
        variable = args[0][1] if args else None
        projected = _sugar.projection(receiver)
        if projected is not None:
            lifted = self._on_each_event(sig, projected, values, span)
            if lifted is not None:
                return lifted
        if sig.node == "Aggregate":
            kind = _AGGREGATES[sig.name]
            if variable is not None:
                return self._aggregate_lambda(kind, receiver, values[0], variable, span)
            return self.build(lambda: ast.Aggregate(kind, receiver, values[0] if values else None, span=span))
        if sig.node == "Exists" or (sig.node == "Call|Exists" and values):
            return self.build(lambda: ast.Exists(variable, receiver, values[0], span=span))
        if sig.node == "EventFilter" and variable is not None:
            # `a.filter(x => C)`: the items x of a for which C holds, i.e. `select x from a where C`.
            item_condition = _item_form(values[0], variable)
            if item_condition is None:
                return self.build(lambda: ast.Select(variable, receiver, values[0], span=span))
            values = (item_condition,)
        if sig.node == "EventFilter":
            return self.build(lambda: ast.EventFilter(receiver, values[0], span=span))
        if variable is not None and sig.node == "Call":
            # `a.map(x => x.f)` is `a.map(f)`; the variable stays where the body needs it (`x * 2`).
            item_value = _item_form(values[0], variable)
            if item_value is not None:
                return self.build(lambda: ast.Call(sig.name, receiver, (item_value, *values[1:]), span=span))
            return self.build(lambda: ast.Call(sig.name, receiver, values, variable, span=span))
        if sig.node == "ForAll":
            return self.build(lambda: ast.ForAll(variable, receiver, values[0], span=span))
        return self.build(lambda: ast.Call(sig.name, receiver, values, span=span))

    def _on_each_event(self, sig: Signature, projected: tuple[ast.Expr, ast.Expr], values: tuple[ast.Expr, ...],
                       span: ast.Span) -> ast.Expr | None:
        """A method on ``xEvent.a`` (see ``_sugar``): an aggregate aggregates the events' a, a test holds for
        some event, a value function applies to each event's a; None for list functions (``distinct``...)."""
        events, item = projected
        if sig.node == "Aggregate" and not values:
            kind = _AGGREGATES[sig.name]
            value = None if kind is ast.AggregateKind.COUNT else item
            return self.build(lambda: ast.Aggregate(kind, events, value, span=span))
        if sig.node != "Call" or sig.receiver not in _SCALAR_RECEIVERS:
            return None
        call = self.build(lambda: ast.Call(sig.name, item, values, span=span))
        if sig.result is ArgType.BOOLEAN:
            return ast.Exists(None, events, call, span=span)
        return _sugar.project(events, call, span)

    def _aggregate_lambda(self, kind: ast.AggregateKind, receiver: ast.Expr, value: ast.Expr, variable: str,
                          span: ast.Span) -> ast.Expr:
        """``a.sum(x => x.v)`` is ``a.sum(v)``; over an array (not events) a value needing ``x`` itself
        (``scores.sum(x => x * 2)``) aggregates ``a.map(x => x * 2)``."""
        if isinstance(value, ast.FieldPath) and value.root is ast.Root.VARIABLE and not value.segments \
                and value.name == variable:
            return self.build(lambda: ast.Aggregate(kind, receiver, None, span=span))  # `scores.sum(x => x)`
        item_value = _item_form(value, variable)
        if item_value is not None:
            return self.build(lambda: ast.Aggregate(kind, receiver, item_value, span=span))
        if _sugar.is_event_list(receiver):
            self.build(lambda: _sugar.bound_to_item(value, variable))  # raises, saying why
        mapped = self.build(lambda: ast.Call("map", receiver, (value,), variable, span=span))
        return self.build(lambda: ast.Aggregate(kind, mapped, None, span=span))

    def let(self, start: Token) -> ast.Expr:
        """``let S = value in body`` (misc-functions.md): ``body`` with ``S`` standing for ``value``.

        Several names are bound by one ``let``, separated by commas (``let A = a, B = b in body``); each value
        may use the names before it. A value is read up to ``in`` or ``,`` (a sum, a path, arithmetic:
        parenthesise a condition); the body takes the rest of the expression, like a lambda's.
        """
        self.advance()
        scope = Scope(item=self.scopes[-1].item, let=True)
        self.scopes.append(scope)
        try:
            while True:
                name = self.expect_name("a variable name after 'let'")
                self.expect_op("=", "'=' after the variable name")
                # Each value may use the names bound before it: `let A = x, B = A * 2 in ...`.
                scope.values[name.text] = self.nested(self.additive)
                if not self.peek().is_op(","):
                    break
                self.advance()
            self.expect_word("in")
            return self.expr()
        finally:
            self.scopes.pop()

    def over_ahead(self) -> str | None:
        """The variable of ``sum value over X from ...`` when the tokens ahead read so, else None."""
        depth, index = 0, self.i + 1
        while index < len(self.tokens) - 2:
            token = self.tokens[index]
            if token.is_op("(", "["):
                depth += 1
            elif token.is_op(")", "]"):
                if depth == 0:
                    return None
                depth -= 1
            elif depth == 0 and (token.is_op(",") or token.is_word("and", "or", "where")):
                return None
            elif depth == 0 and token.is_word("over") and self.tokens[index + 1].kind is Kind.IDENT \
                    and self.tokens[index + 2].is_word("from", "in"):
                return self.tokens[index + 1].text
            index += 1
        return None

    def aggregate_over(self, start: Token) -> ast.Expr:
        """``sum X.v over X from S [where C]`` (also ``average``, ``min``, ``max``): the aggregate of ``X.v``
        over the items of ``S`` matching ``C``, i.e. ``(select X from S where C).sum(v)``."""
        variable = self.over_ahead()
        assert variable is not None
        kind = _AGGREGATES[self.advance().text.lower()]
        bound = Scope(item=False, variables={variable: ast.Root.VARIABLE})
        value = self.scoped(bound, self.additive)
        self.expect_word("over")
        self.expect_name("the variable")
        self.expect_word("from", "in")
        source = self.postfix()
        where: ast.Expr | None = None
        if self.peek().is_word("where") or self.peek().is_op(":"):
            self.advance()
            where = self.scoped(bound, self.expr)
        span = self.span_from(start)
        items = source if where is None else self.build(lambda: ast.Select(variable, source, where, span=span))
        item_value = self.build(lambda: _sugar.bound_to_item(value, variable))
        return self.build(lambda: ast.Aggregate(kind, items, item_value, span=span))

    def _signature(self, name_token: Token) -> Signature:
        sig = functions.lookup(name_token.text)
        if sig is None:
            hint = self.suggest(name_token.text, functions.FUNCTIONS)
            raise self.error_at(name_token, f"unknown function {name_token.text}{hint}")
        return sig

    # -- functions: name(args) ---------------------------------------------------------------------

    def function(self, name_token: Token) -> ast.Expr:
        """Build the node for a function call written ``name(args)``."""
        sig = self._signature(name_token)
        if Form.FUNCTION not in sig.forms:
            raise self.error_at(name_token, f"{sig.name} is not a function: see `{sig.example}`")
        special = {"Chain": self._chain, "InSegment": self._in_segment, "DateLiteral": self._date,
                   "DateTimeLiteral": self._datetime}.get(sig.node)
        if special is not None:
            return special(name_token)
        args = self.arguments(sig, receiver=False)
        self._arity(sig, len(args) - (1 if sig.receiver is not None else 0), name_token)
        values = tuple(arg for arg, _ in args)
        span = self.span_from(name_token)
        if sig.node == "If":
            return self.build(lambda: ast.If(values[0], values[1], values[2], span=span))
        if sig.node == "CurrentTime":
            return ast.CurrentTime(_TIMES[sig.name], span=span)
        if sig.receiver is not None:
            if not values:
                raise self.error_span(span, f"{sig.name} needs the value to work on, e.g. `{sig.example}`")
            return self.build(lambda: ast.Call(sig.name, values[0], values[1:], span=span))
        return self.build(lambda: ast.Call(sig.name, None, values, span=span))

    def _string_args(self, name_token: Token, low: int, high: int, what: str) -> list[Token]:
        self.expect_op("(")
        out: list[Token] = []
        while True:
            if self.peek().kind is not Kind.STRING:
                raise self.error_here(what)
            out.append(self.advance())
            if not self.peek().is_op(",") or len(out) >= high:
                break
            self.advance()
        self.expect_op(")", "',' or ')'" if len(out) < high else "')'")
        if len(out) < low:
            raise self.error_span(self.span_from(name_token), f"{name_token.text} takes {low} to {high} strings")
        return out

    def _in_segment(self, name_token: Token) -> ast.Expr:
        args = self._string_args(name_token, 1, 2, "a segment id in double quotes")
        span = self.span_from(name_token)
        if len(args) == 1:
            return self.build(lambda: ast.InSegment(args[0].text, span=span))
        return self.build(lambda: ast.InSegment(args[1].text, args[0].text, span=span))

    def _date(self, name_token: Token) -> ast.Expr:
        if self.peek(1).kind is Kind.NUMBER:
            self.expect_op("(")
            parts: list[int] = []
            for index in range(3):
                token = self.peek()
                if token.kind is not Kind.NUMBER or not token.text.isdigit():
                    raise self.error_here("a whole number (year, month, day)")
                parts.append(int(self.advance().text))
                if index < 2:
                    self.expect_op(",", "',' and the " + ("month" if index == 0 else "day"))
            self.expect_op(")")
            span = self.span_from(name_token)
            try:
                value = dt.date(parts[0], parts[1], parts[2])
            except ValueError as problem:
                raise self.error_span(span, f"not a valid date: {problem}") from None
            return ast.DateLiteral(value, span=span)
        (text,) = self._string_args(name_token, 1, 1, 'a date such as "2020-01-31"')
        try:
            value = dt.date.fromisoformat(text.text)
        except ValueError:
            raise self.error_at(text, f'not a valid date: {text.raw} (write "YYYY-MM-DD")') from None
        return ast.DateLiteral(value, span=self.span_from(name_token))

    def _datetime(self, name_token: Token) -> ast.Expr:
        (text,) = self._string_args(name_token, 1, 1, 'a date and time such as "2020-01-31T10:00:00Z"')
        try:
            value = dt.datetime.fromisoformat(text.text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise self.error_at(text, f"not a valid date and time: {text.raw} (write ISO 8601)") from None
        # PQL times are UTC; a time written without an offset is read as UTC.
        value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
        return ast.DateTimeLiteral(value, span=self.span_from(name_token))

    # -- quantifiers -------------------------------------------------------------------------------

    def quantifier(self, keyword: Token) -> ast.Expr:
        """``exists X from S where C``, ``forall X from S where C``, ``select X from S [where C]``.

        AEP's logical-quantifiers page also writes the condition after ``:`` and binds several variables
        in one quantifier: ``exists E from xEvent where C1, I from E.productListItems where C2`` is
        ``exists E from xEvent where (C1 and exists I from E.productListItems where C2)`` (``forall`` alike).
        """
        return self._binding(keyword.text.lower(), keyword)

    def _binding(self, word: str, start: Token) -> ast.Expr:
        variable = self.expect_name("a variable name").text
        self.expect_word("from", "in")
        source = self.postfix()
        condition: ast.Expr | None = None
        if word != "select" or self.peek().is_word("where") or self.peek().is_op(":"):
            condition = self.scoped(Scope(item=False, variables={variable: ast.Root.VARIABLE}),
                                    lambda: self._quantified(word))
        span = self.span_from(start)
        if word == "select":
            return self.build(lambda: ast.Select(variable, source, condition, span=span))
        assert condition is not None
        cls = ast.Exists if word == "exists" else ast.ForAll
        return self.build(lambda: cls(variable, source, condition, span=span))

    def _quantified(self, word: str) -> ast.Expr:
        # `where C` or `: C`, then (exists and forall) `, Y from T where D`: a nested binding.
        if not self.peek().is_op(":"):
            self.expect_word("where")
        else:
            self.advance()
        condition = self.expr()
        if word == "select" or not (self.peek().is_op(",") and self.peek(1).kind is Kind.IDENT
                                    and self.peek(2).is_word("from")):
            return condition
        self.advance()
        inner = self._binding(word, self.peek())
        span = condition.span.to(inner.span)
        return self.build(lambda: ast.And((condition, inner), span=span))

    # -- time windows ------------------------------------------------------------------------------

    def window(self) -> ast.TimeWindow:
        """What follows ``occurs`` (and fills ``WHEN(...)``)."""
        token = self.peek()
        now = ast.CurrentTime(ast.CurrentTimeKind.NOW, span=token.span)
        if token.kind is Kind.OP and token.text in _COMPARE:
            self.advance()
            return self._relative(token, _COMPARE[token.text])
        if token.is_word("within"):
            self.advance()
            return self._relative(token, ast.CompareOp.LE)
        if token.is_word("before", "after"):
            direction = ast.Direction(self.advance().text.lower())
            anchor = self._anchor(direction)
            return ast.PointWindow(direction, anchor, span=self.span_from(token))
        if token.is_word("on"):
            self.advance()
            return ast.OnWindow(self.additive(), span=self.span_from(token))
        if token.is_word("between"):
            self.advance()
            start = self.additive()
            self.expect_word("and")
            end = self.additive()
            return ast.BetweenWindow(start, end, span=self.span_from(token))
        if token.is_word("in"):
            self.advance()
            relation = self.expect_word("last", "next")
            return self._in_period(token, relation, now, required_amount=True)
        if token.is_word("this", "last", "next"):
            relation = self.advance()
            return self._in_period(token, relation, now, required_amount=False)
        if token.is_word(*_TIMES) or token.is_word("date", "datetime") or token.text in self.step_names:
            return ast.OnWindow(self.additive(), span=self.span_from(token))
        raise self.error_here("a time window such as '<= 7 days before now', 'before', 'after', 'between', "
                              "'on', 'this month' or 'in last 7 days'")

    def _anchor(self, direction: ast.Direction) -> ast.Expr:
        """The time after ``before``/``after``: a value, or a calendar period (``this month``, ``last week``:
        datetime-functions.md's "relative time unit"), whose start a time is before, whose end it is after."""
        token, unit = self.peek(), self.peek(1)
        if token.is_word("this", "last", "next") and unit.kind is Kind.IDENT and unit.text.lower() in UNITS:
            self.i += 2
            relation, end = ast.PeriodRelation(token.text.lower()), direction is ast.Direction.AFTER
            span = self.span_from(token)
            return self.build(lambda: ast.PeriodEdge(relation, UNITS[unit.text.lower()], end, span=span))
        return self.additive()

    def _unit(self) -> ast.TimeUnit:
        token = self.peek()
        if token.kind is not Kind.IDENT or token.text.lower() not in UNITS:
            raise self.error_here("a time unit such as days, weeks or months")
        return UNITS[self.advance().text.lower()]

    def _amount(self) -> int:
        token = self.peek()
        if token.kind is not Kind.NUMBER or not token.text.isdigit():
            raise self.error_here("a whole number of time units")
        return int(self.advance().text)

    def _relative(self, start: Token, op: ast.CompareOp) -> ast.TimeWindow:
        amount = self._amount()
        unit = self._unit()
        if start.is_word("within") and not self.peek().is_word("before", "after"):
            direction = ast.Direction.BEFORE  # "within N units" alone looks back from now.
        else:
            # AEP's occurs page lists `from` beside before/after: `3 days from now` is 3 days after now.
            written = self.expect_word("before", "after", "from").text.lower()
            direction = ast.Direction.AFTER if written == "from" else ast.Direction(written)
        if self.starts_expression(self.peek()):
            anchor = self._anchor(direction)
        else:
            # AEP reads a missing anchor (`occurs < 7 days before`) as now.
            anchor = ast.CurrentTime(ast.CurrentTimeKind.NOW, span=self.span_from(start))
        span = self.span_from(start)
        return self.build(lambda: ast.RelativeWindow(op, amount, unit, direction, anchor, span=span))

    def _in_period(self, start: Token, relation: Token, now: ast.Expr, *, required_amount: bool) -> ast.TimeWindow:
        word = relation.text.lower()
        if self.peek().kind is Kind.NUMBER or required_amount:
            amount = self._amount()
            unit = self._unit()
            direction = ast.Direction.BEFORE if word == "last" else ast.Direction.AFTER
            if word == "this":
                raise self.error_at(relation, "write 'this' with a single period, e.g. 'this month'")
            span = self.span_from(start)
            return self.build(lambda: ast.RelativeWindow(ast.CompareOp.LE, amount, unit, direction, now, span=span))
        unit = self._unit()
        span = self.span_from(start)
        return self.build(lambda: ast.PeriodWindow(ast.PeriodRelation(word), unit, span=span))

    # -- chain -------------------------------------------------------------------------------------

    def _chain(self, name_token: Token) -> ast.Expr:
        self.expect_op("(")
        source = self.postfix()
        self.expect_op(",", "',' and the time field (e.g. timestamp)")
        time_field = self.scoped(Scope(item=True), self.postfix)
        if not isinstance(time_field, ast.FieldPath) or time_field.root is not ast.Root.ITEM:
            raise self.error_span(time_field.span, "the chain's time field is a field of each event, e.g. timestamp")
        self.expect_op(",", "',' and the list of steps")
        self.expect_op("[", "'[' starting the list of steps")
        names = self._step_names_ahead()
        steps: list[ast.ChainStep] = []
        counts: list[tuple[ast.ChainStep, ast.NumberLiteral]] = []
        wheres: list[ast.Expr] = []
        while True:
            step, count, where = self._step(names)
            steps.append(step)
            if count is not None:
                counts.append((step, count))
            if where is not None:
                wheres.append(where)
            if not self.peek().is_op(","):
                break
            self.advance()
        self.expect_op("]", "',' or ']'")
        self.expect_op(")")
        span = self.span_from(name_token)
        chain: ast.Expr
        if counts:
            chain = self._frequency(source, time_field, steps, counts[0], span)
        else:
            chain = self.build(lambda: ast.Chain(source, time_field, tuple(steps), span=span))
        # WHERE(C) in a step is a condition on the profile that must hold with the sequence.
        return chain if not wheres else ast.And((*wheres, chain), span=span)

    def _frequency(self, source: ast.Expr, time_field: ast.FieldPath, steps: list[ast.ChainStep],
                   counted: tuple[ast.ChainStep, ast.NumberLiteral], span: ast.Span) -> ast.Expr:
        """``chain(xEvent, t, [A: WHAT(c) WHEN(w) COUNT(n)])``: at least n events match c within w (the
        edge segmentation page's "frequency event"), i.e. ``xEvent[c and t occurs w].count() >= n``."""
        step, count = counted
        if len(steps) != 1 or step.negated:
            raise self.error_span(count.span, "COUNT(n) is supported in a chain of one step that is not negated "
                                              "(at least n such events); for more, compare xEvent[...].count()")
        condition = step.what
        if step.when is not None:
            time: ast.FieldPath = time_field
            if step.variable is not None:
                time = ast.FieldPath(ast.Root.VARIABLE, time_field.segments, step.variable, span=time_field.span)
            occurs = ast.Occurs(time, step.when, span=step.when.span)
            condition = ast.And((*(step.what.operands if isinstance(step.what, ast.And) else (step.what,)), occurs),
                                span=step.span)
        events: ast.Expr = ast.EventFilter(source, condition, span=span)
        if step.variable is not None:  # the step's event is named (`^` read it): so is each event counted
            events = ast.Select(step.variable, source, condition, span=span)
        total = ast.Aggregate(ast.AggregateKind.COUNT, events, span=span)
        return ast.Compare(ast.CompareOp.GE, total, count, span=span)

    def _step_names_ahead(self) -> frozenset[str]:
        # Steps may only anchor on earlier steps, but knowing every name lets `after C2` (a later step)
        # be reported as exactly that instead of as an unknown field.
        names, depth, index = set(), 0, self.i
        while index < len(self.tokens) - 1:
            token = self.tokens[index]
            if token.is_op("(", "["):
                depth += 1
            elif token.is_op(")", "]"):
                if depth == 0:
                    break
                depth -= 1
            elif depth == 0 and token.kind is Kind.IDENT and self.tokens[index + 1].is_op(":"):
                names.add(token.text)
            index += 1
        return frozenset(names)

    def _step(self, names: frozenset[str]
              ) -> tuple[ast.ChainStep, ast.NumberLiteral | None, ast.Expr | None]:
        """One step; with its ``COUNT(n)`` and ``WHERE(condition)`` (edge segmentation pages), if written."""
        start = self.expect_name("a step name such as C0")
        self.expect_op(":", "':' after the step name")
        negated = False
        if self.peek().is_word("not") or self.peek().is_op("!"):
            self.advance()
            negated = True
        self.expect_word("what")
        self.expect_op("(")
        scope = Scope(item=True, filter=True)
        what = self.scoped(scope, self.expr)
        if scope.up is not None:  # `^` inside a list of the condition read the step's event: name it
            what = _sugar.item_as_variable(what, scope.up)
        self.expect_op(")")
        when: ast.TimeWindow | None = None
        count: ast.NumberLiteral | None = None
        where: ast.Expr | None = None
        while self.peek().is_word("when", "count", "where") and self.peek(1).is_op("("):
            clause = self.advance()
            word = clause.text.lower()
            if {"when": when, "count": count, "where": where}[word] is not None:
                raise self.error_at(clause, f"{clause.text.upper()} is written twice in step {start.text}")
            self.expect_op("(")
            if word == "when":
                outer, self.step_names = self.step_names, names
                try:
                    when = self.window()
                finally:
                    self.step_names = outer
            elif word == "count":
                token = self.peek()
                if token.kind is not Kind.NUMBER or not token.text.isdigit() or int(token.text) < 1:
                    raise self.error_here("a whole number of events, at least 1")
                self.advance()
                count = ast.NumberLiteral(int(token.text), span=token.span)
            else:
                where = self.scoped(Scope(item=False), self.expr)
            self.expect_op(")")
        if self.peek().is_word("not"):
            self.advance()
            negated = True
        if negated and where is not None:
            raise self.error_span(where.span, "WHERE(...) is a condition on the profile; write it outside the "
                                              "negated step, e.g. C and not chain(...)")
        span = self.span_from(start)
        step = self.build(lambda: ast.ChainStep(start.text, what, when, negated, scope.up, span=span))
        return step, count, where


def _item_form(body: ast.Expr, variable: str) -> ast.Expr | None:
    """``body`` of ``variable => body`` with the variable's fields read from the current item (``x.f`` is
    ``f``), or None when the body needs the variable itself or holds a condition on another list."""
    try:
        return _sugar.bound_to_item(body, variable)
    except ast.InvalidNode:
        return None


def _param(sig: Signature, index: int) -> functions.Param | None:
    if index < 0 or not sig.params:
        return None
    return sig.params[min(index, len(sig.params) - 1)]
