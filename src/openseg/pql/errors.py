"""Errors as data: every PQL problem carries its position, what was found and what was expected.

The parser, the AST constructors and the checker all raise :class:`PqlError`. Only the API edge turns it
into AEP's 400 body (``to_dict`` gives the ``report`` part); the CLI prints ``str(err)``, which is the
message followed by the offending line and a caret under the column.

:class:`NotSupportedOnEngine` has no position: the expression is valid, but the SQL backend cannot compile
one of its constructs for an engine's dialect. It lives here, beside the compiler that raises it, so that
``pql`` imports no engine module and the engines import nothing from ``pql``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class PqlError(Exception):
    """A problem in a PQL expression, located at a 1-based line and column.

    Attributes:
        message: The problem in plain words (no grammar token names).
        line: 1-based line of the problem.
        col: 1-based column of the problem (one past the end of the text for "unexpected end").
        found: The text found at that position (``"end of input"`` at the end), or None.
        expected: What would have been accepted there, in plain words, or an empty tuple.
        source: The whole expression text when known, used to render the snippet.
        offset: 0-based character offset of the problem in ``source``.
        end_offset: 0-based offset one past the end of the offending text (>= ``offset``).
    """

    def __init__(
        self,
        message: str,
        *,
        line: int = 1,
        col: int = 1,
        found: str | None = None,
        expected: Sequence[str] = (),
        source: str | None = None,
        offset: int | None = None,
        end_offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.col = col
        self.found = found
        self.expected = tuple(expected)
        self.source = source
        self.offset = offset
        self.end_offset = end_offset
        self.errors: tuple[PqlError, ...] = (self,)

    def with_source(self, source: str) -> PqlError:
        """Attach the expression text (for the snippet) and return self."""
        self.source = source
        return self

    def snippet(self) -> str:
        """The offending source line with a caret under the column (empty without a source)."""
        if self.source is None:
            return ""
        lines = self.source.split("\n")
        text = lines[self.line - 1] if 0 < self.line <= len(lines) else ""
        width = 1
        if self.offset is not None and self.end_offset is not None and self.end_offset > self.offset:
            # Underline the whole offending token, but never past the end of its line.
            width = max(1, min(self.end_offset - self.offset, len(text) - self.col + 1))
        return f"{text}\n{' ' * (self.col - 1)}{'^' * width}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description, used as the ``report`` of AEP's 400 error body."""
        return {
            "message": self.message,
            "line": self.line,
            "col": self.col,
            "found": self.found,
            "expected": list(self.expected),
        }

    def __str__(self) -> str:
        head = f"line {self.line}, col {self.col}: {self.message}"
        snippet = self.snippet()
        return f"{head}\n{snippet}" if snippet else head

    def __repr__(self) -> str:
        return f"PqlError({self.message!r}, line={self.line}, col={self.col})"


class PqlErrors(PqlError):
    """Several problems found in one pass; behaves as the first one and lists all in ``errors``."""

    def __init__(self, errors: Sequence[PqlError]) -> None:
        if not errors:
            raise ValueError("PqlErrors needs at least one error")
        first = errors[0]
        super().__init__(
            first.message,
            line=first.line,
            col=first.col,
            found=first.found,
            expected=first.expected,
            source=first.source,
            offset=first.offset,
            end_offset=first.end_offset,
        )
        self.errors = tuple(errors)

    def __str__(self) -> str:
        return "\n".join(PqlError.__str__(error) for error in self.errors)

    def to_dict(self) -> dict[str, Any]:
        """The first problem's description plus ``errors``: every problem found."""
        first = super().to_dict()
        first["errors"] = [PqlError.to_dict(error) for error in self.errors]
        return first


class UnknownNodeError(TypeError):
    """A visitor met a node class it has no ``visit_<Node>`` method for."""


class NotSupportedOnEngine(Exception):
    """A PQL construct that the named engine cannot evaluate.

    Attributes:
        engine: The engine (dialect) name, e.g. ``"spark"``.
        construct: The PQL construct, e.g. ``"regexGroup"``.
        reason: Why the engine cannot run it.
    """

    def __init__(self, engine: str, construct: str, reason: str = "") -> None:
        self.engine = engine
        self.construct = construct
        self.reason = reason
        message = f"{construct} is not supported on {engine}"
        super().__init__(f"{message}: {reason}" if reason else message)
