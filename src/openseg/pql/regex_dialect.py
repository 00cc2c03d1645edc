"""PQL's one regular-expression dialect: the part of RE2 that DuckDB (RE2), Spark (java.util.regex) and
Python (``re``, compiled with ``re.ASCII``) read alike.

``matches`` and ``regexGroup`` patterns written as literals are checked against it when a definition is
checked, so an engine never meets a pattern it would read differently or refuse. docs/pql.md lists the
dialect; the differences it cannot remove (``.`` and ``\\r``, ``$`` before a final newline, ``\\s`` and the
vertical tab, ``(?i)`` beyond ASCII) are in its "Differences from AEP" section.

Allowed: literal characters; ``\\`` before ASCII punctuation; ``\\d \\D \\w \\W \\s \\S \\b \\B``;
``\\n \\r \\t \\f``; ``\\xhh``; ``.``; ``^ $``; classes ``[...]`` / ``[^...]`` with ranges and the escapes
above (except ``\\b \\B``); groups ``(...)`` and ``(?:...)``; ``|``; the quantifiers ``* + ? {n} {n,} {n,m}``
(n, m at most 1000), each optionally lazy (``?``); and ``(?i)`` at the very start (with ASCII letters only).
"""

from __future__ import annotations

import re
import string

#: The largest repetition count RE2 accepts.
MAX_REPEAT = 1000
_CLASS_ESCAPES = frozenset("dDwWsSnrtf")
_ESCAPES = _CLASS_ESCAPES | frozenset("bB")
_PUNCTUATION = frozenset(string.punctuation)
_REPEAT = re.compile(r"\{(\d+)(,(\d*))?\}")
_HEX = re.compile(r"x[0-9A-Fa-f]{2}")
_NAMED = {"(?=": "lookaround", "(?!": "lookaround", "(?<=": "lookaround", "(?<!": "lookaround",
          "(?>": "atomic group", "(?P": "named group", "(?<": "named group", "(?#": "comment"}
_ESCAPE_NAMES = {"A": "start of text", "Z": "end of text", "z": "end of text", "G": "end of last match",
                 "Q": "quoting", "E": "quoting", "p": "Unicode class", "P": "Unicode class",
                 "k": "named backreference", "v": "vertical tab or whitespace", "h": "horizontal whitespace",
                 "u": "Unicode escape", "U": "Unicode escape", "N": "named character", "R": "line break",
                 "X": "grapheme", "K": "match reset", "a": "bell", "e": "escape", "c": "control character",
                 "0": "octal escape"}


class RegexProblem(ValueError):
    """A pattern outside the dialect: what, and the 0-based position in the pattern."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


def problem(pattern: str) -> RegexProblem | None:
    """Why ``pattern`` is outside PQL's regex dialect, or None when it is inside."""
    try:
        _Scan(pattern).run()
    except RegexProblem as found:
        return found
    try:
        re.compile(pattern, re.ASCII)
    except re.error as error:
        return RegexProblem(error.msg, error.pos or 0)
    return None


def compile_python(pattern: str) -> re.Pattern[str]:
    """``pattern`` as Python reads it in the dialect (``\\d \\w \\s \\b`` ASCII only, as RE2 and Java)."""
    return re.compile(pattern, re.ASCII)


class _Scan:
    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        self.can_repeat = False  # whether a quantifier here has something to repeat

    def fail(self, message: str, at: int | None = None) -> RegexProblem:
        return RegexProblem(message, self.i if at is None else at)

    def run(self) -> None:
        if self.p.startswith("(?i)"):
            self.i = 4
            # RE2 folds the case of every letter, Java and Python (re.ASCII) only of ASCII ones.
            for index, char in enumerate(self.p):
                if not char.isascii() and char.isalpha():
                    raise self.fail(f"'(?i)' with the non-ASCII letter '{char}' is not supported (the engines "
                                    "fold its case differently)", index)
        while self.i < len(self.p):
            char = self.p[self.i]
            if char == "\\":
                self._escape(in_class=False)
                self.can_repeat = True
            elif char == "[":
                self._class()
                self.can_repeat = True
            elif char == "(":
                self._group()
                self.can_repeat = False
            elif char in "*+?{":
                self._quantifier()
            elif char in ")|^$":
                self.i += 1
                self.can_repeat = char == ")"
            else:
                self.i += 1
                self.can_repeat = True

    def _escape(self, *, in_class: bool) -> None:
        start = self.i
        if self.i + 1 >= len(self.p):
            raise self.fail("a '\\' ends the pattern")
        char = self.p[self.i + 1]
        allowed = _CLASS_ESCAPES if in_class else _ESCAPES
        if char in allowed or char in _PUNCTUATION:
            self.i += 2
            return
        if _HEX.match(self.p, self.i + 1):
            self.i += 4
            return
        if char.isdigit() and char != "0":
            raise self.fail(f"'\\{char}' (backreferences) is not supported", start)
        what = _ESCAPE_NAMES.get(char, "an escape the engines read differently")
        if char in "bB":
            what = "word boundary inside a class"
        raise self.fail(f"'\\{char}' ({what}) is not supported", start)

    def _class(self) -> None:
        start = self.i
        self.i += 1
        if self.p.startswith("^", self.i):
            self.i += 1
        if self.p.startswith("]", self.i):
            raise self.fail("a ']' first in a class is read differently by the engines; write '\\]'")
        while self.i < len(self.p):
            char = self.p[self.i]
            if char == "]":
                self.i += 1
                return
            if char == "\\":
                self._escape(in_class=True)
            elif char == "[":
                raise self.fail("'[' inside a class (nested classes, [:alpha:]) is not supported; write '\\['")
            elif self.p.startswith("&&", self.i):
                raise self.fail("'&&' inside a class (class intersection) is not supported")
            else:
                self.i += 1
        raise self.fail("the class is not closed with ']'", start)

    def _group(self) -> None:
        if not self.p.startswith("(?", self.i):
            self.i += 1
            return
        if self.p.startswith("(?:", self.i):
            self.i += 3
            return
        for prefix in sorted(_NAMED, key=len, reverse=True):
            if self.p.startswith(prefix, self.i):
                raise self.fail(f"'{prefix}' ({_NAMED[prefix]}) is not supported")
        if self.p.startswith("(?i)", self.i):
            raise self.fail("'(?i)' is supported only at the start of the pattern")
        raise self.fail("'(?' flags other than a leading '(?i)' are not supported")

    def _quantifier(self) -> None:
        start = self.i
        if self.p[self.i] == "{":
            repeat = _REPEAT.match(self.p, self.i)
            if repeat is None:
                raise self.fail("a '{' that is not a repetition {n}, {n,} or {n,m} must be written '\\{'")
            counts = [int(n) for n in (repeat.group(1), repeat.group(3)) if n]
            if max(counts) > MAX_REPEAT:
                raise self.fail(f"a repetition count above {MAX_REPEAT} is not supported")
            self.i = repeat.end()
        else:
            self.i += 1
        if not self.can_repeat:
            raise self.fail(f"'{self.p[start:self.i]}' has nothing to repeat", start)
        if self.p.startswith("?", self.i):
            self.i += 1
        elif self.p.startswith("+", self.i):
            raise self.fail("possessive quantifiers ('*+', '++', '?+') are not supported")
        if self.i < len(self.p) and self.p[self.i] in "*+?{" and _is_quantifier(self.p, self.i):
            raise self.fail("a quantifier cannot follow another")
        self.can_repeat = False


def _is_quantifier(pattern: str, index: int) -> bool:
    return pattern[index] != "{" or _REPEAT.match(pattern, index) is not None
