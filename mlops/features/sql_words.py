"""The words of feature SQL: tokens, the functions, types and fields a row expression
may use, the words only a query uses, and the limits on an expression's size.

The parser (:mod:`mlops.features.sql_parser`) accepts nothing outside these lists; the
guard (:mod:`mlops.features.sql_guard`) documents the grammar.
"""
from __future__ import annotations

import re

# Scalar functions with their (fewest, most) arguments (None: any number): one value in,
# one value out, no I/O. Aggregates and window functions are excluded too: they would
# change what a row's feature means.
ARITY = {**dict.fromkeys((
    "abs", "sqrt", "cbrt", "ln", "log2", "log10", "log1p", "exp", "floor", "ceil", "ceiling",
    "sign", "sin", "cos", "tan", "asin", "acos", "atan", "degrees", "radians", "lower", "upper",
    "length", "char_length", "octet_length", "reverse", "initcap"), (1, 1)),
    **dict.fromkeys(("log", "pow", "power", "mod", "atan2", "nullif", "left", "right",
                     "starts_with", "ends_with", "strpos", "date_part", "strftime"), (2, 2)),
    **dict.fromkeys(("round", "trim", "ltrim", "rtrim"), (1, 2)), "substr": (2, 3),
    **dict.fromkeys(("coalesce", "least", "greatest", "concat"), (1, None)),
    "concat_ws": (2, None)}
FUNCTIONS = frozenset(ARITY)
TYPES = frozenset({
    "int", "integer", "bigint", "smallint", "tinyint", "int2", "int4", "int8", "float", "float4",
    "float8", "double", "real", "decimal", "numeric", "varchar", "text", "string", "char", "boolean",
    "bool", "date", "timestamp", "time", "uint", "ubigint", "usmallint", "utinyint",
})
FIELDS = frozenset({
    "year", "month", "day", "hour", "minute", "second", "millisecond", "microsecond", "nanosecond",
    "dow", "doy", "isodow", "isoyear", "week", "quarter", "epoch", "millennium", "century", "decade",
    "dayofweek", "dayofyear",
})
# Words that only make sense in a query or a statement: never part of an expression.
QUERY_WORDS = frozenset({
    "select", "from", "where", "with", "union", "except", "intersect", "join", "table", "values",
    "into", "insert", "update", "delete", "drop", "create", "attach", "copy", "pragma", "limit",
    "order", "group", "having", "over", "exists", "lateral", "install", "load", "set", "call",
})
KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false", "case",
                      "when", "then", "else", "end", "cast", "try_cast", "as", "extract", "like",
                      "ilike"}) | QUERY_WORDS
RESERVED = KEYWORDS | FUNCTIONS | TYPES | FIELDS  # column names quoted when rendered
MAX_LENGTH = 10_000   # characters
MAX_NODES = 256       # columns, literals, operators and calls in one expression
MAX_DEPTH = 64        # nesting levels (polars' SQL parser stops between 100 and 200)

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|'')*')
  | (?P<qid>"[^"\\]+")
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|<>|!=|==|\|\||::|[-+*/%=<>(),])
""", re.VERBOSE)


class Reject(Exception):
    """Why and where the text is not an allowed expression."""

    def __init__(self, what: str, pos: int):
        super().__init__(what)
        self.what, self.pos = what, pos


def tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) triples; kinds: num, str, qid, id, op, eof."""
    out, pos = [], 0
    while pos < len(text):
        if text.startswith(("--", "/*"), pos):
            raise Reject("a comment is not allowed", pos)
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = {";": "';' is not allowed (one expression, no statements)",
                    "\\": "a backslash is not allowed"}.get(ch, f"unexpected character {ch!r}")
            if ch in "'\"":
                what = "an unterminated quote or a backslash escape (not allowed)"
            raise Reject(what, pos)
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group(), pos))
        pos = m.end()
    out.append(("eof", "", len(text)))
    return out


def describe_token(kind: str, text: str) -> str:
    if kind == "eof":
        return "end of expression"
    if kind == "id" and text.lower() in QUERY_WORDS:
        return f"{text.upper()} (a query or statement, not an expression)"
    return repr(text)


class TokenCursor:
    """A position in a token list, with the reads a parser needs."""

    def __init__(self, tokens: list[tuple[str, str, int]]):
        self.tokens, self.i = tokens, 0

    def peek(self, ahead: int = 0) -> tuple[str, str, int]:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def word(self, ahead: int = 0) -> str:
        kind, text, _ = self.peek(ahead)
        return text.lower() if kind == "id" else ""

    def at(self, *options: str) -> bool:
        kind, text, _ = self.peek()
        return (kind == "op" and text in options) or (kind == "id" and text.lower() in options)

    def take(self, *options: str) -> str:
        kind, text, pos = self.peek()
        if not self.at(*options):
            raise Reject(describe_token(kind, text) + f" where {' or '.join(map(repr, options))} was expected", pos)
        self.i += 1
        return text

    def _check_word(self) -> None:
        kind, text, pos = self.peek()
        if kind == "id" and text.lower() in QUERY_WORDS:
            raise Reject(f"{text.upper()} is not allowed: no subqueries, SELECT/FROM or statements "
                          "(feature SQL is an expression, not a query)", pos)

    def _unexpected(self) -> Reject:
        self._check_word()
        kind, text, pos = self.peek()
        return Reject(f"unexpected {describe_token(kind, text)}", pos)

    def take_int(self) -> int:
        kind, text, pos = self.peek()
        if kind != "num" or not text.isdigit() or len(text) > 6:
            raise Reject(f"{describe_token(kind, text)} where a whole number was expected", pos)
        self.i += 1
        return int(text)
