"""PQL tokens: the scanner turns text into tokens that know where they came from."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from openseg.pql.ast import Span
from openseg.pql.errors import PqlError


class Kind(str, Enum):
    """Token kinds; ``describe`` gives each one in the words an error message uses."""

    IDENT = "identifier"
    STRING = "string"
    NUMBER = "number"
    PARAM = "parameter"  # $1
    OP = "operator"
    EOF = "end of input"


@dataclass(frozen=True, slots=True)
class Token:
    """One token: its kind, its text (the decoded value for strings), and its span."""

    kind: Kind
    text: str
    span: Span
    raw: str  # the source text exactly as written (quotes and escapes included)

    def is_word(self, *words: str) -> bool:
        """Whether this is an identifier equal (case-insensitively) to one of ``words``."""
        return self.kind is Kind.IDENT and not self.quoted and self.text.lower() in words

    def is_op(self, *ops: str) -> bool:
        """Whether this is one of the punctuation/operator tokens ``ops``."""
        return self.kind is Kind.OP and self.text in ops

    @property
    def quoted(self) -> bool:
        """Whether this identifier was written in backticks (never a keyword then)."""
        return self.raw.startswith("`")

    def shown(self) -> str:
        """The token as an error message shows it."""
        if self.kind is Kind.EOF:
            return "end of input"
        return self.raw


_OPERATORS = ("=>", "!=", "<>", "<=", ">=", "==", "=", "<", ">", "+", "-", "*", "/", "%", "^", "(", ")", "[", "]",
              ",", ".", ":", "!")
_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "/": "/", "n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


class Scanner:
    """Turns PQL text into a list of tokens, raising a located :class:`PqlError` on bad characters."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.line_start = 0

    def tokens(self) -> list[Token]:
        """All tokens of the text, ending with an EOF token one past the last character."""
        out: list[Token] = []
        while True:
            self._skip_space()
            if self.pos >= len(self.text):
                out.append(Token(Kind.EOF, "", self._span(self.pos, self.pos), ""))
                return out
            out.append(self._next())

    def _span(self, start: int, end: int) -> Span:
        return Span(start, end, self.line, start - self.line_start + 1)

    def _skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            if self.text[self.pos] == "\n":
                self.line += 1
                self.line_start = self.pos + 1
            self.pos += 1

    def _error(self, message: str, start: int, end: int, expected: tuple[str, ...] = ()) -> PqlError:
        return PqlError(
            message,
            line=self.line,
            col=start - self.line_start + 1,
            found=self.text[start:end] or "end of input",
            expected=expected,
            source=self.text,
            offset=start,
            end_offset=end,
        )

    def _next(self) -> Token:
        start, char = self.pos, self.text[self.pos]
        if char in "\"'":
            return self._string(char)
        if char == "`":
            end = self.text.find("`", start + 1)
            if end < 0:
                raise self._error("unterminated quoted field name", start, len(self.text), ("'`'",))
            self.pos = end + 1
            return Token(Kind.IDENT, self.text[start + 1 : end], self._span(start, self.pos), self.text[start:self.pos])
        if _is_digit(char):
            return self._number()
        if char.isalpha() or char == "_":
            while self.pos < len(self.text) and (self.text[self.pos].isalnum() or self.text[self.pos] == "_"):
                self.pos += 1
            word = self.text[start : self.pos]
            return Token(Kind.IDENT, word, self._span(start, self.pos), word)
        if char == "$":
            self.pos += 1
            while self.pos < len(self.text) and _is_digit(self.text[self.pos]):
                self.pos += 1
            raw = self.text[start : self.pos]
            if raw != "$1":
                raise self._error(f"unknown input reference {raw}; only $1 (the profile) exists", start, self.pos)
            return Token(Kind.PARAM, raw, self._span(start, self.pos), raw)
        for op in _OPERATORS:
            if self.text.startswith(op, start):
                self.pos += len(op)
                return Token(Kind.OP, op, self._span(start, self.pos), op)
        raise self._error(f"unexpected character {char!r}", start, start + 1)

    def _number(self) -> Token:
        start, text = self.pos, self.text
        while self.pos < len(text) and _is_digit(text[self.pos]):
            self.pos += 1
        # A '.' makes a fraction only when a digit follows, so `3.days`-like paths never swallow it.
        if self.pos + 1 < len(text) and text[self.pos] == "." and _is_digit(text[self.pos + 1]):
            self.pos += 1
            while self.pos < len(text) and _is_digit(text[self.pos]):
                self.pos += 1
        if self.pos < len(text) and text[self.pos] in "eE":
            mark = self.pos
            self.pos += 1
            if self.pos < len(text) and text[self.pos] in "+-":
                self.pos += 1
            if self.pos < len(text) and _is_digit(text[self.pos]):
                while self.pos < len(text) and _is_digit(text[self.pos]):
                    self.pos += 1
            else:
                self.pos = mark
        raw = text[start : self.pos]
        return Token(Kind.NUMBER, raw, self._span(start, self.pos), raw)

    def _string(self, quote: str) -> Token:
        start, text = self.pos, self.text
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(text):
            char = text[self.pos]
            if char == quote:
                self.pos += 1
                return Token(Kind.STRING, "".join(chars), self._span(start, self.pos), text[start : self.pos])
            if char == "\n":
                break
            if char == "\\":
                if self.pos + 1 >= len(text):
                    break
                escape = text[self.pos + 1]
                if escape == "u" and self.pos + 5 < len(text):
                    digits = text[self.pos + 2 : self.pos + 6]
                    try:
                        chars.append(chr(int(digits, 16)))
                    except ValueError:
                        raise self._error(f"bad escape \\u{digits} in string", self.pos, self.pos + 6) from None
                    self.pos += 6
                    continue
                if escape not in _ESCAPES:
                    raise self._error(f"unknown escape \\{escape} in string", self.pos, self.pos + 2)
                chars.append(_ESCAPES[escape])
                self.pos += 2
                continue
            chars.append(char)
            self.pos += 1
        raise self._error("unterminated string", start, self.pos, (f"closing {quote}",))


def _is_digit(char: str) -> bool:
    """An ASCII digit: ``str.isdigit`` also takes '²' and '٣', which ``int()`` then refuses."""
    return "0" <= char <= "9"
