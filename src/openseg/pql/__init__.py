"""openseg.pql: the Profile Query Language front end and the single AST its backends derive from.

``parse`` turns ``pql/text`` into a typed tree (``openseg.pql.ast``), ``check`` validates it against an
XDM schema, ``describe`` renders it in English, ``to_text`` renders it back to canonical PQL, and
``evaluation_info`` / ``segment_references`` tell the segmentation service what it needs.
"""

from openseg.pql import ast, functions
from openseg.pql.capabilities import evaluation_info, segment_references
from openseg.pql.checker import CheckedExpr, check
from openseg.pql.describe import describe
from openseg.pql.errors import PqlError, PqlErrors
from openseg.pql.parser import parse
from openseg.pql.render import to_text

__all__ = [
    "CheckedExpr",
    "PqlError",
    "PqlErrors",
    "ast",
    "check",
    "describe",
    "evaluation_info",
    "functions",
    "parse",
    "segment_references",
    "to_text",
]
