"""Sandbox for feature SQL: parse an expression into a typed tree, allowing only what a
row expression needs.

polars' SQL front end runs subqueries and table functions while it parses, so
``amount IN (SELECT x FROM read_csv('/etc/passwd'))`` reads a file (and an https URL
makes a request) before any plan exists. Every derived expression therefore goes
through :func:`parse_sql` first: a tokenizer and an operator-precedence parser that
builds the typed tree of :mod:`mlops.features.sql_tree`. What the grammar cannot derive
is an error, so the allowlist is the grammar itself, not a list of forbidden words.

    expr     := operand (binary operand)*  with postfix IS [NOT] NULL|TRUE|FALSE,
                [NOT] IN (literal, ...), [NOT] BETWEEN operand AND operand, '::' type
    binary   := OR | AND | [NOT] LIKE | [NOT] ILIKE | = == <> != < <= > >= | + - || | * / %
    operand  := ('-'|'+'|NOT) operand | number | 'string' | TRUE | FALSE | NULL | column
              | "column" | ( expr ) | CASE [expr] (WHEN expr THEN expr)+ [ELSE expr] END
              | CAST ( expr AS type ) | TRY_CAST ( expr AS type )
              | EXTRACT ( field FROM expr ) | function ( [expr, ...] )

Precedence (loosest first) is polars' own: OR, AND, NOT, IS, LIKE, comparisons / IN /
BETWEEN, ``+ - ||``, ``* / %``, unary sign, ``::``. The parser is a loop over explicit
operator and bracket stacks (never Python recursion), and bounds what it builds: at most
:data:`MAX_NODES` nodes (a chain ``a + a + ...`` of 1,000 terms is refused: polars'
own SQL translation of such a chain takes time cubic in its length, 20 s at 800 terms)
and nesting at most :data:`MAX_DEPTH` levels (brackets, prefix operators, operands of
operands; a left-associative chain ``a + b - c`` is one level). Functions are checked
for their number of arguments and types for their parameters, so nothing that makes
polars fail (or panic) at translation passes (``greatest()``, ``::decimal(38,99)``).

    >>> parse_sql("amount / 2", key="features.derived[0]")
    Binary(op='/', left=Column(name='amount'), right=Literal(kind='number', text='2'))
    >>> check_sql("amount IN (SELECT 1)", key="x")
    Traceback (most recent call last):
    ...
    mlops.errors.FeatureSpecError: x.expr: invalid SQL expression 'amount IN (SELECT 1)': SELECT is not allowed...
"""
from __future__ import annotations

import difflib
from collections.abc import Iterable

from mlops.errors import FeatureSpecError
from mlops.features.sql_parser import Parser
from mlops.features.sql_tree import Node
from mlops.features.sql_words import (  # noqa: F401  (the vocabulary, re-exported)
    ARITY,
    FIELDS,
    FUNCTIONS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_LENGTH,
    MAX_NODES,
    QUERY_WORDS,
    RESERVED,
    TYPES,
    Reject,
    tokenize,
)


def _shown(expr: str) -> str:
    """The expression for an error message: whole when short, its start when long."""
    return repr(expr) if len(expr) <= 120 else f"{expr[:60]!r}... ({len(expr):,} characters)"


def parse_sql(expr: str, *, key: str, name: str | None = None,
              allowed_columns: Iterable[str] | None = None) -> Node:
    """The typed tree of ``expr``, or FeatureSpecError (key ``<key>.expr``) naming the
    offending part when ``expr`` is not a plain row expression.

    Allowed: column references, literals, arithmetic, comparisons, AND/OR/NOT, IN (literal
    list), BETWEEN, IS [NOT] NULL, LIKE, CASE, CAST / ``::``, EXTRACT and the scalar
    functions in :data:`FUNCTIONS`. Rejected, naming the offending part: subqueries and
    SELECT/FROM, table functions (``read_*``), unknown functions, comments, several
    statements, more than :data:`MAX_NODES` nodes, nesting deeper than :data:`MAX_DEPTH`.
    With ``allowed_columns``, any other column is rejected too. ``name`` (the feature)
    prefixes the message.
    """
    full_key = f"{key}.expr"
    who = f'feature "{name}": ' if name else ""
    fix = "write a row expression over columns, e.g. 'x / (x_sum_1h + 1)'"
    if not isinstance(expr, str) or not expr.strip():
        raise FeatureSpecError(f"{who}must be a non-empty SQL expression; got {expr!r} instead",
                               key=full_key, fix=fix)
    if len(expr) > MAX_LENGTH:
        raise FeatureSpecError(f"{who}expression is {len(expr):,} characters long (limit {MAX_LENGTH:,})",
                               key=full_key, fix=fix)
    try:
        parser = Parser(tokenize(expr))
        tree = parser.parse()
    except Reject as r:
        raise FeatureSpecError(f"{who}invalid SQL expression {_shown(expr)}: {r.what} (position {r.pos}, "
                               f"near {expr[r.pos:r.pos + 24]!r})", key=full_key, fix=fix) from None
    if allowed_columns is not None:
        known = list(allowed_columns)
        for col, pos in parser.columns:
            if col not in known:
                close = difflib.get_close_matches(col, known, n=1)
                hint = f' Did you mean "{close[0]}"?' if close else ""
                raise FeatureSpecError(f'{who}expression {_shown(expr)}: unable to find column "{col}" '
                                       f"(position {pos}); valid columns: {sorted(known)}.{hint}",
                                       key=full_key, fix="fix the name or add the column to the source")
    return tree


def check_sql(expr: str, *, key: str, allowed_columns: Iterable[str] | None = None) -> Node:
    """:func:`parse_sql` under its older name (the experiment outcome metrics use it)."""
    return parse_sql(expr, key=key, allowed_columns=allowed_columns)
