"""The typed expression tree of a feature SQL expression, and what is done with it.

:func:`mlops.features.sql_guard.parse_sql` turns the text into these nodes (and only
allowlisted constructs can become a node). Everything downstream walks the tree, never
the text: the polars backend renders it to canonical SQL for polars
(:func:`render_sql`, every operator parenthesised as the tree says, so polars cannot
read a different precedence into it), the row backend compiles it to Python closures,
and the plan describes it (:func:`describe_tree`). Every walk is a loop over an explicit
stack, so a deep tree can never exhaust Python's recursion limit (the parser bounds
depth and size anyway: :data:`mlops.features.sql_guard.MAX_DEPTH`, ``MAX_NODES``).

Example:
    >>> from mlops.features.sql_guard import parse_sql
    >>> tree = parse_sql("amount / (amount_sum_1h + 1)", key="k")
    >>> render_sql(tree)
    'amount / (amount_sum_1h + 1)'
    >>> describe_tree(tree)
    ['/', ['col', 'amount'], ['+', ['col', 'amount_sum_1h'], ['number', '1']]]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True, slots=True)
class Column:
    name: str


@dataclass(frozen=True, slots=True)
class Literal:
    kind: str   # number | string | boolean | null
    text: str   # as written (numbers and strings verbatim: polars types them by spelling)


@dataclass(frozen=True, slots=True)
class Unary:
    op: str     # - | + | not
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    op: str     # or and = <> < <= > >= + - || * / % like ilike "not like" "not ilike"
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class IsTest:
    operand: Node
    test: str   # null | true | false
    negated: bool


@dataclass(frozen=True, slots=True)
class InList:
    operand: Node
    items: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class Between:
    operand: Node
    low: Node
    high: Node
    negated: bool


@dataclass(frozen=True, slots=True)
class Case:
    operand: Node | None
    whens: tuple[tuple[Node, Node], ...]
    default: Node | None


@dataclass(frozen=True, slots=True)
class Cast:
    operand: Node
    type: str   # canonical lower-case: "double", "decimal(10,2)", ...
    strict: bool  # CAST / :: (strict) or TRY_CAST


@dataclass(frozen=True, slots=True)
class Extract:
    field: str
    operand: Node


@dataclass(frozen=True, slots=True)
class Call:
    name: str   # lower-case, one of sql_guard.FUNCTIONS
    args: tuple[Node, ...]


Node = Union[Column, Literal, Unary, Binary, IsTest, InList, Between, Case, Cast, Extract, Call]

# binary operators by precedence level (higher binds tighter), as polars' SQL parser has them
LEVEL = {"or": 5, "and": 10, "like": 19, "ilike": 19, "not like": 19, "not ilike": 19,
         "=": 20, "<>": 20, "<": 20, "<=": 20, ">": 20, ">=": 20,
         "+": 30, "-": 30, "||": 30, "*": 40, "/": 40, "%": 40}
_ATOMS = (Column, Literal, Call, Cast, Extract, Case)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``, in evaluation (left to right) order."""
    if isinstance(node, (Column, Literal)):
        return ()
    if isinstance(node, (Unary, IsTest, InList, Cast, Extract)):
        return (node.operand,)
    if isinstance(node, Binary):
        return (node.left, node.right)
    if isinstance(node, Between):
        return (node.operand, node.low, node.high)
    if isinstance(node, Call):
        return node.args
    parts = [] if node.operand is None else [node.operand]
    for cond, value in node.whens:
        parts += [cond, value]
    return tuple(parts + ([] if node.default is None else [node.default]))


def postorder(root: Node) -> list[Node]:
    """Every node, children before parents (a loop, no recursion)."""
    out, stack = [], [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            out.append(node)
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in reversed(children(node)))
    return out


def columns(root: Node) -> list[str]:
    """The column names the expression reads, once each, in order of appearance."""
    return list(dict.fromkeys(n.name for n in postorder(root) if isinstance(n, Column)))


def _quote(name: str, reserved: frozenset[str]) -> str:
    return name if _IDENT.match(name) and name.lower() not in reserved else '"' + name + '"'


def _wrap(text: str, child: Node, parent: Node, left: bool) -> str:
    """``text`` of ``child`` as an operand of ``parent``: bare when nothing can regroup it."""
    if isinstance(child, _ATOMS):
        return text
    if isinstance(parent, Binary) and isinstance(child, Binary) and left \
            and LEVEL[child.op] == LEVEL[parent.op] and LEVEL[child.op] in (5, 10, 30, 40):
        return text  # a left-associative chain: a + b - c
    return f"({text})"


def _render_one(node: Node, parts: list[str], reserved: frozenset[str],
                reads: dict[int, bool] | None = None) -> str:
    """The SQL text of ``node`` given the rendered texts of its children; with
    ``reads`` (node -> reads a column), a division by a constant is written as the
    multiplication by its reciprocal (see :func:`render_sql`)."""
    kids = children(node)

    def arg(i: int, left: bool = False) -> str:
        return _wrap(parts[i], kids[i], node, left)
    if isinstance(node, Column):
        return _quote(node.name, reserved)
    if isinstance(node, Literal):
        return node.text
    if isinstance(node, Unary):
        return ("NOT " if node.op == "not" else node.op) + arg(0)
    if isinstance(node, Binary):
        return _render_binary(node, arg(0, left=True), arg(1), parts[1], reads)
    if isinstance(node, IsTest):
        return f"{arg(0)} IS {'NOT ' if node.negated else ''}{node.test.upper()}"
    if isinstance(node, InList):
        return f"{arg(0)} {'NOT ' if node.negated else ''}IN ({', '.join(i.text for i in node.items)})"
    if isinstance(node, Between):
        return f"{arg(0)} {'NOT ' if node.negated else ''}BETWEEN {arg(1)} AND {arg(2)}"
    if isinstance(node, Cast):
        return f"{'CAST' if node.strict else 'TRY_CAST'}({parts[0]} AS {node.type.upper()})"
    if isinstance(node, Extract):
        return f"EXTRACT({node.field.upper()} FROM {parts[0]})"
    if isinstance(node, Call):
        return f"{node.name}({', '.join(parts)})"
    return _render_case(node, parts)


def _render_binary(node: Binary, left: str, right: str, bare_right: str,
                   reads: dict[int, bool] | None) -> str:
    if reads is not None and node.op == "/" and reads[id(node.left)] and not reads[id(node.right)]:
        return f"{left} * (1 / CAST({bare_right} AS DOUBLE))"
    return f"{left} {node.op.upper() if node.op[0].isalpha() else node.op} {right}"


def _render_case(node: Case, parts: list[str]) -> str:
    it = iter(parts)
    out = ["CASE"] + ([next(it)] if node.operand is not None else [])
    for _ in node.whens:
        out += ["WHEN", next(it), "THEN", next(it)]
    if node.default is not None:
        out += ["ELSE", next(it)]
    return " ".join(out + ["END"])


def render_sql(root: Node, *, reserved: frozenset[str] = frozenset(),
               for_polars: bool = False) -> str:
    """Canonical SQL of the tree: keywords upper-case, literals as written, parentheses
    wherever an operand is itself an operation (except left-associative chains), so any
    SQL parser reads exactly this tree. ``reserved``: column names that must be quoted
    (:data:`mlops.features.sql_guard.RESERVED`: SQL words and function names).

    ``for_polars`` writes ``x / c`` (``c`` without a column) as ``x * (1 / CAST(c AS
    DOUBLE))``: what polars computes for a division by a constant on frames of three rows
    or more (it multiplies by the reciprocal), made explicit so that frames of one or two
    rows (where polars divides) give the same bits, and the rows backend with them."""
    texts: dict[int, str] = {}
    reads: dict[int, bool] | None = {} if for_polars else None
    for node in postorder(root):
        kids = children(node)
        if reads is not None:
            reads[id(node)] = isinstance(node, Column) or any(reads[id(c)] for c in kids)
        texts[id(node)] = _render_one(node, [texts[id(c)] for c in kids], reserved, reads)
    return texts[id(root)]


def _describe_one(node: Node, parts: list) -> list:
    if isinstance(node, Column):
        return ["col", node.name]
    if isinstance(node, Literal):
        return [node.kind, node.text]
    if isinstance(node, Unary):
        return [node.op, *parts]
    if isinstance(node, Binary):
        return [node.op, *parts]
    if isinstance(node, IsTest):
        return [("is not " if node.negated else "is ") + node.test, *parts]
    if isinstance(node, InList):
        return ["not in" if node.negated else "in", *parts, [i.text for i in node.items]]
    if isinstance(node, Between):
        return ["not between" if node.negated else "between", *parts]
    if isinstance(node, Cast):
        return ["cast" if node.strict else "try_cast", *parts, node.type]
    if isinstance(node, Extract):
        return ["extract", node.field, *parts]
    if isinstance(node, Call):
        return ["call", node.name, *parts]
    return ["case", node.operand is not None, node.default is not None, *parts]


def describe_tree(root: Node) -> list:
    """The tree as nested lists (operator first): a description that depends on what the
    expression means, not on its spelling (spacing, keyword case, redundant parentheses)."""
    done: dict[int, list] = {}
    for node in postorder(root):
        done[id(node)] = _describe_one(node, [done[id(c)] for c in children(node)])
    return done[id(root)]
