"""Sandbox for feature SQL: parse an expression and allow only what a row expression needs.

polars' SQL front end runs subqueries and table functions while it parses, so
``amount IN (SELECT x FROM read_csv('/etc/passwd'))`` reads a file (and an https URL
makes a request) before any plan exists. Every derived expression therefore goes
through :func:`check_sql` first: a small tokenizer and recursive-descent parser for
the expression grammar below. What the grammar cannot derive is an error, so the
allowlist is the grammar itself, not a list of forbidden words.

    expr      := or
    or        := and (OR and)*
    and       := not (AND not)*
    not       := NOT not | predicate
    predicate := concat [cmp concat | [NOT] IN (literal, ...) | [NOT] BETWEEN concat AND concat
                        | IS [NOT] (NULL|TRUE|FALSE) | [NOT] (LIKE|ILIKE) concat]
    concat    := sum ('||' sum)*
    sum       := product (('+'|'-') product)*
    product   := unary (('*'|'/'|'%') unary)*
    unary     := ('-'|'+') unary | postfix
    postfix   := primary ('::' type)*
    primary   := number | 'string' | TRUE | FALSE | NULL | column | "column" | ( expr )
               | CASE [expr] (WHEN expr THEN expr)+ [ELSE expr] END
               | CAST ( expr AS type ) | EXTRACT ( field FROM expr ) | function ( [expr, ...] )

    >>> check_sql("amount / (amount_sum_1h + 1)", key="features.derived[0]")
    >>> check_sql("amount IN (SELECT 1)", key="x")
    Traceback (most recent call last):
    ...
    mlops.errors.FeatureSpecError: x.expr: invalid SQL expression 'amount IN (SELECT 1)': SELECT is not allowed...
"""
from __future__ import annotations

import difflib
import re
from collections.abc import Iterable

from mlops.errors import FeatureSpecError

# Scalar functions: one value in, one value out, no I/O. Aggregates and window
# functions are excluded too: they would change what a row's feature means.
FUNCTIONS = frozenset({
    "abs", "sqrt", "cbrt", "ln", "log", "log2", "log10", "log1p", "exp", "pow", "power", "round",
    "floor", "ceil", "ceiling", "sign", "mod", "sin", "cos", "tan", "asin", "acos", "atan", "atan2",
    "degrees", "radians", "coalesce", "least", "greatest", "nullif", "lower", "upper", "length",
    "char_length", "octet_length", "substr", "trim", "ltrim", "rtrim", "concat", "concat_ws", "left",
    "right", "starts_with", "ends_with", "strpos", "reverse", "initcap", "date_part", "strftime",
})
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
MAX_LENGTH = 10_000
MAX_DEPTH = 100

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|'')*')
  | (?P<qid>"[^"\\]+")
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|<>|!=|==|\|\||::|[-+*/%=<>(),])
""", re.VERBOSE)


class _Reject(Exception):
    def __init__(self, what: str, pos: int):
        super().__init__(what)
        self.what, self.pos = what, pos


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    """(kind, text, position) triples; kinds: num, str, qid, id, op, eof."""
    out, pos = [], 0
    while pos < len(text):
        if text.startswith(("--", "/*"), pos):
            raise _Reject("a comment is not allowed", pos)
        m = _TOKEN.match(text, pos)
        if m is None:
            ch = text[pos]
            what = {";": "';' is not allowed (one expression, no statements)",
                    "\\": "a backslash is not allowed"}.get(ch, f"unexpected character {ch!r}")
            if ch in "'\"":
                what = "an unterminated quote or a backslash escape (not allowed)"
            raise _Reject(what, pos)
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group(), pos))
        pos = m.end()
    out.append(("eof", "", len(text)))
    return out


class _Parser:
    def __init__(self, tokens: list[tuple[str, str, int]]):
        self.tokens, self.i, self.depth = tokens, 0, 0
        self.columns: list[tuple[str, int]] = []

    # -- token helpers
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
            raise _Reject(self._describe(kind, text) + f" where {' or '.join(map(repr, options))} was expected", pos)
        self.i += 1
        return text

    @staticmethod
    def _describe(kind: str, text: str) -> str:
        if kind == "eof":
            return "end of expression"
        if kind == "id" and text.lower() in QUERY_WORDS:
            return f"{text.upper()} (a query or statement, not an expression)"
        return repr(text)

    def _check_word(self) -> None:
        kind, text, pos = self.peek()
        if kind == "id" and text.lower() in QUERY_WORDS:
            raise _Reject(f"{text.upper()} is not allowed: no subqueries, SELECT/FROM or statements "
                          "(feature SQL is an expression, not a query)", pos)

    # -- grammar
    def parse(self) -> None:
        self.expr()
        kind, text, pos = self.peek()
        if kind != "eof":
            self._check_word()
            raise _Reject(f"unexpected {self._describe(kind, text)}", pos)

    def expr(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise _Reject(f"nesting deeper than {MAX_DEPTH} levels", self.peek()[2])
        self.and_()
        while self.at("or"):
            self.i += 1
            self.and_()
        self.depth -= 1

    def and_(self) -> None:
        self.not_()
        while self.at("and"):
            self.i += 1
            self.not_()

    def not_(self) -> None:
        if self.at("not"):
            self.i += 1
            return self.not_()
        self.predicate()

    def predicate(self) -> None:
        self.concat()
        if self.at("=", "==", "<>", "!=", "<", "<=", ">", ">="):
            self.i += 1
            return self.concat()
        if self.at("is"):
            self.i += 1
            if self.at("not"):
                self.i += 1
            self.take("null", "true", "false")
            return None
        if self.at("not") and self.word(1) in ("in", "between", "like", "ilike"):
            self.i += 1
        if self.at("in"):
            self.i += 1
            return self.literal_list()
        if self.at("between"):
            self.i += 1
            self.concat()
            self.take("and")
            return self.concat()
        if self.at("like", "ilike"):
            self.i += 1
            return self.concat()
        return None

    def literal_list(self) -> None:
        self.take("(")
        while True:
            self._check_word()
            if self.at("-", "+"):
                self.i += 1
            kind, text, pos = self.peek()
            if not (kind in ("num", "str") or (kind == "id" and text.lower() in ("null", "true", "false"))):
                raise _Reject(f"{self._describe(kind, text)} inside IN (...) is not allowed: only a list of "
                              "literals", pos)
            self.i += 1
            if not self.at(","):
                break
            self.i += 1
        self.take(")")

    def concat(self) -> None:
        self.sum()
        while self.at("||"):
            self.i += 1
            self.sum()

    def sum(self) -> None:
        self.product()
        while self.at("+", "-"):
            self.i += 1
            self.product()

    def product(self) -> None:
        self.unary()
        while self.at("*", "/", "%"):
            self.i += 1
            self.unary()

    def unary(self) -> None:
        if self.at("-", "+"):
            self.i += 1
            return self.unary()
        self.primary()
        while self.at("::"):
            self.i += 1
            self.type_()

    def type_(self) -> None:
        kind, text, pos = self.peek()
        name = text.lower() if kind == "id" else ""
        if name not in TYPES and name != "double":
            raise _Reject(f"type {text!r} is not allowed (allowed: {sorted(TYPES)})", pos)
        self.i += 1
        if name == "double" and self.word() == "precision":
            self.i += 1
        if self.at("("):  # DECIMAL(10, 2), VARCHAR(20)
            self.i += 1
            self.take_number()
            if self.at(","):
                self.i += 1
                self.take_number()
            self.take(")")

    def take_number(self) -> None:
        kind, text, pos = self.peek()
        if kind != "num":
            raise _Reject(f"{self._describe(kind, text)} where a number was expected", pos)
        self.i += 1

    def primary(self) -> None:
        kind, text, pos = self.peek()
        low = text.lower()
        if kind in ("num", "str"):
            self.i += 1
        elif kind == "qid":
            self.columns.append((text[1:-1], pos))
            self.i += 1
        elif kind == "op" and text == "(":
            self.i += 1
            self._check_word()
            self.expr()
            self.take(")")
        elif kind == "id" and low in ("null", "true", "false"):
            self.i += 1
        elif kind == "id" and low == "case":
            self.case()
        elif kind == "id" and low in ("cast", "try_cast"):
            self.i += 1
            self.take("(")
            self.expr()
            self.take("as")
            self.type_()
            self.take(")")
        elif kind == "id" and low == "extract":
            self.i += 1
            self.take("(")
            f_kind, f_text, f_pos = self.peek()
            if f_text.lower() not in FIELDS:
                raise _Reject(f"EXTRACT field {f_text!r} is not allowed (allowed: {sorted(FIELDS)})", f_pos)
            self.i += 1
            self.take("from")
            self.expr()
            self.take(")")
        elif kind == "id" and self.peek(1)[1] == "(" and low not in KEYWORDS:
            self.function(text, pos)
        elif kind == "id" and low not in KEYWORDS:
            self.columns.append((text, pos))
            self.i += 1
        else:
            self._check_word()
            raise _Reject(f"unexpected {self._describe(kind, text)}", pos)

    def case(self) -> None:
        self.i += 1
        if not self.at("when"):
            self.expr()
        self.take("when")
        while True:
            self.expr()
            self.take("then")
            self.expr()
            if not self.at("when"):
                break
            self.i += 1
        if self.at("else"):
            self.i += 1
            self.expr()
        self.take("end")

    def function(self, name: str, pos: int) -> None:
        low = name.lower()
        if low.startswith(("read_", "scan_")) or low in ("generate_series", "unnest", "range"):
            raise _Reject(f"table function {name}() is not allowed: no file, network or table access from a "
                          "feature definition", pos)
        if low not in FUNCTIONS:
            close = difflib.get_close_matches(low, sorted(FUNCTIONS), n=1)
            hint = f" Did you mean {close[0]}()?" if close else ""
            raise _Reject(f"unknown function {name}() is not allowed (allowed scalar functions: "
                          f"{', '.join(sorted(FUNCTIONS))}).{hint}", pos)
        self.i += 2  # name and "("
        if self.at(")"):
            self.i += 1
            return
        while True:
            self._check_word()
            self.expr()
            if not self.at(","):
                break
            self.i += 1
        self.take(")")


def canonical_sql(expr: str) -> list[str]:
    """The expression as a list of tokens: whitespace dropped, SQL words lower-cased.

    A description of what the user wrote that depends on no library's text form, so a
    pin on it moves only when the expression does (not when polars prints it anew).

        >>> canonical_sql("Amount  /(x_SUM_1h + 1) IS NOT NULL")
        ['Amount', '/', '(', 'x_SUM_1h', '+', '1', ')', 'is', 'not', 'null']
    """
    words = KEYWORDS | FUNCTIONS | TYPES | FIELDS
    return [text.lower() if kind == "id" and text.lower() in words else text
            for kind, text, _ in _tokenize(expr) if kind != "eof"]


def check_sql(expr: str, *, key: str, allowed_columns: Iterable[str] | None = None) -> None:
    """Raise FeatureSpecError (key ``<key>.expr``) unless ``expr`` is a plain row expression.

    Allowed: column references, literals, arithmetic, comparisons, AND/OR/NOT, IN (literal
    list), BETWEEN, IS [NOT] NULL, LIKE, CASE, CAST / ``::``, EXTRACT and the scalar
    functions in :data:`FUNCTIONS`. Rejected, naming the offending part: subqueries and
    SELECT/FROM, table functions (``read_*``), unknown functions, comments, several
    statements. With ``allowed_columns``, any other column is rejected too.
    """
    full_key = f"{key}.expr"
    fix = "write a row expression over columns, e.g. 'x / (x_sum_1h + 1)'"
    if not isinstance(expr, str) or not expr.strip():
        raise FeatureSpecError(f"must be a non-empty SQL expression; got {expr!r} instead", key=full_key, fix=fix)
    if len(expr) > MAX_LENGTH:
        raise FeatureSpecError(f"expression is {len(expr)} characters long (limit {MAX_LENGTH})", key=full_key,
                               fix=fix)
    try:
        parser = _Parser(_tokenize(expr))
        parser.parse()
    except _Reject as r:
        raise FeatureSpecError(f"invalid SQL expression {expr!r}: {r.what} (position {r.pos}, near "
                               f"{expr[r.pos:r.pos + 24]!r})", key=full_key, fix=fix) from None
    if allowed_columns is not None:
        known = list(allowed_columns)
        for col, pos in parser.columns:
            if col not in known:
                close = difflib.get_close_matches(col, known, n=1)
                hint = f' Did you mean "{close[0]}"?' if close else ""
                raise FeatureSpecError(f'expression {expr!r}: unable to find column "{col}" (position {pos}); '
                                       f"valid columns: {sorted(known)}.{hint}", key=full_key,
                                       fix="fix the name or add the column to the source")
