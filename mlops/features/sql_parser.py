"""The feature SQL parser: tokens to a typed tree, over explicit stacks.

An operator-precedence parser: ``out`` holds the operands built so far, ``ops`` the
pending operators and the open brackets (parentheses, calls, CASE, CAST, EXTRACT). Every
step is a loop iteration, never a Python call per nesting level, so no input can exhaust
the recursion limit; :data:`mlops.features.sql_words.MAX_NODES` and ``MAX_DEPTH`` bound
what it builds. :func:`mlops.features.sql_guard.parse_sql` is the public entry.
"""
from __future__ import annotations

import difflib

from mlops.features.sql_tree import (
    LEVEL,
    Between,
    Binary,
    Call,
    Case,
    Cast,
    Column,
    Extract,
    InList,
    IsTest,
    Literal,
    Node,
    Unary,
)
from mlops.features.sql_words import (
    ARITY,
    FIELDS,
    FUNCTIONS,
    KEYWORDS,
    MAX_DEPTH,
    MAX_NODES,
    TYPES,
    Reject,
    TokenCursor,
    describe_token,
)

_SYMBOLS = {"==": "=", "!=": "<>", **{s: s for s in ("+", "-", "*", "/", "%", "||", "=", "<>",
                                                       "<", "<=", ">", ">=")}}
_CLOSERS = frozenset({")", ",", "as", "when", "then", "else", "end"})
_PREFIX, _IS, _COMPARE, _CAST = 45, 17, 20, 50


class Parser(TokenCursor):
    """Operator precedence over explicit stacks: ``out`` holds (node, depth) operands,
    ``ops`` pending operators and open brackets (dicts with ``kind``)."""

    def __init__(self, tokens: list[tuple[str, str, int]]):
        super().__init__(tokens)
        self.out: list[tuple[Node, int]] = []
        self.ops: list[dict] = []
        self.nodes = self.open = 0
        self.columns: list[tuple[str, int]] = []

    # -- building
    def count(self, pos: int) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise Reject(f"more than {MAX_NODES} nodes (columns, literals, operators, calls): "
                          "split it into several derived features", pos)

    def push(self, node: Node, depth: int, pos: int) -> None:
        self.count(pos)
        if depth > MAX_DEPTH:
            raise Reject(f"nesting deeper than {MAX_DEPTH} levels", pos)
        self.out.append((node, depth))

    def pop(self) -> tuple[Node, int]:
        return self.out.pop()

    def begin(self, kind: str, pos: int, **data) -> dict:
        self.open += 1
        if self.open > MAX_DEPTH:
            raise Reject(f"nesting deeper than {MAX_DEPTH} levels", pos)
        frame = {"kind": kind, "pos": pos, **data}
        self.ops.append(frame)
        return frame

    def end(self) -> dict:
        self.open -= 1
        return self.ops.pop()

    def reduce(self, above: int) -> None:
        """Apply pending operators binding at least as tightly as ``above``."""
        while self.ops and self.ops[-1]["kind"] in ("prefix", "binary", "between") \
                and self.ops[-1]["prec"] >= above:
            self.apply(self.ops.pop())

    def apply(self, op: dict) -> None:
        if op["kind"] == "prefix":
            node, d = self.pop()
            return self.push(Unary(op["op"], node), d + 1, op["pos"])
        if op["kind"] == "binary":
            (right, dr), (left, dl) = self.pop(), self.pop()
            chain = isinstance(left, Binary) and LEVEL[left.op] == op["prec"] \
                and op["prec"] in (5, 10, 30, 40)
            return self.push(Binary(op["op"], left, right), max(dl + (not chain), dr + 1), op["pos"])
        if op["low"] is None:
            raise Reject("BETWEEN without its AND", op["pos"])
        (high, dh), (operand, d) = self.pop(), self.pop()
        self.push(Between(operand, op["low"][0], high, op["negated"]),
                  max(d, dh, op["low"][1]) + 1, op["pos"])

    def operator(self, kind: str, op: str, prec: int, pos: int, **data) -> None:
        self.reduce(prec)
        self.ops.append({"kind": kind, "op": op, "prec": prec, "pos": pos, **data})

    # -- grammar
    def parse(self) -> Node:
        expect_operand = True
        while True:
            if expect_operand:
                expect_operand = self.operand()
            else:
                kind, text, pos = self.peek()
                if kind == "eof":
                    return self.finish(pos)
                expect_operand = self.infix()

    def finish(self, pos: int) -> Node:
        self.reduce(-1)
        if self.ops:
            frame = self.ops[-1]
            what = {"case": "CASE without END"}.get(frame["kind"], "an unclosed '('")
            raise Reject(f"{what} (opened at position {frame['pos']})", pos)
        return self.out[0][0]

    def operand(self) -> bool:
        """Read one operand or a prefix; True while an operand is still expected."""
        kind, text, pos = self.peek()
        low = text.lower() if kind == "id" else ""
        if (kind == "op" and text in ("-", "+")) or low == "not":
            self.i += 1
            self.ops.append({"kind": "prefix", "op": low or text, "pos": pos,
                             "prec": 15 if low else _PREFIX})
            return True
        leaf = _leaf(kind, text, low)
        if kind == "id" and low not in KEYWORDS and self.peek(1)[1] != "(":
            leaf = Column(text)
        if leaf is not None:
            self.i += 1
            if isinstance(leaf, Column):
                self.columns.append((leaf.name, pos))
            self.push(leaf, 1, pos)
            return False
        if kind == "op" and text == "(":
            self.i += 1
            self.begin("paren", pos)
            return True
        if low in ("case", "cast", "try_cast", "extract"):
            return self.construct(low, pos)
        if kind == "id" and low not in KEYWORDS and self.peek(1)[1] == "(":
            return self.call(text, pos)
        if kind == "eof":
            raise Reject("end of expression where a value was expected", pos)
        raise self._unexpected()

    def construct(self, low: str, pos: int) -> bool:
        self.i += 1
        if low == "case":
            frame = self.begin("case", pos, operand=None, whens=[], default=None, state="operand")
            if self.at("when"):
                self.i += 1
                frame["state"] = "cond"
            return True
        self.take("(")
        if low in ("cast", "try_cast"):
            self.begin("cast", pos, strict=low == "cast")
            return True
        f_kind, f_text, f_pos = self.peek()
        if f_text.lower() not in FIELDS:
            raise Reject(f"EXTRACT field {f_text!r} is not allowed (allowed: {sorted(FIELDS)})", f_pos)
        self.i += 1
        self.take("from")
        self.begin("extract", pos, field=f_text.lower())
        return True

    def call(self, name: str, pos: int) -> bool:
        low = name.lower()
        if low.startswith(("read_", "scan_")) or low in ("generate_series", "unnest", "range"):
            raise Reject(f"table function {name}() is not allowed: no file, network or table access from a "
                          "feature definition", pos)
        if low not in FUNCTIONS:
            close = difflib.get_close_matches(low, sorted(FUNCTIONS), n=1)
            hint = f" Did you mean {close[0]}()?" if close else ""
            raise Reject(f"unknown function {name}() is not allowed (allowed scalar functions: "
                          f"{', '.join(sorted(FUNCTIONS))}).{hint}", pos)
        self.i += 2  # name and "("
        if self.at(")"):
            self.i += 1
            self.push(_checked_call(low, (), pos), 1, pos)
            return False
        self.begin("call", pos, name=low, args=[])
        return True

    def infix(self) -> bool:
        """Read an operator or a closer after an operand; True when an operand must follow."""
        kind, text, pos = self.peek()
        low = text.lower() if kind == "id" else ""
        if kind == "op" and text in _SYMBOLS:
            self.i += 1
            op = _SYMBOLS[text]
            self.operator("binary", op, LEVEL[op], pos)
            return True
        if low == "and" and self.between_and():
            return True
        if low in ("and", "or", "like", "ilike"):
            self.i += 1
            self.operator("binary", low, LEVEL[low], pos)
            return True
        negated = low == "not" and self.word(1) in ("in", "between", "like", "ilike")
        if negated:
            self.i += 1
            low = self.word()
        if low in ("like", "ilike"):
            self.i += 1
            self.operator("binary", f"not {low}", LEVEL[low], pos)
            return True
        if low in ("is", "in", "between") or text == "::":
            return self.postfix(low or text, negated, pos)
        if low in _CLOSERS or text in _CLOSERS:
            return self.close(low or text, pos)
        raise self._unexpected()

    def between_and(self) -> bool:
        """The AND of ``x BETWEEN low AND high`` (not a logical AND)."""
        self.reduce(_COMPARE + 1)
        top = self.ops[-1] if self.ops else {}
        if top.get("kind") != "between" or top["low"] is not None:
            return False
        self.i += 1
        top["low"] = self.pop()
        return True

    def postfix(self, word: str, negated: bool, pos: int) -> bool:
        self.i += 1
        if word == "between":
            self.operator("between", "between", _COMPARE, pos, low=None, negated=negated)
            return True
        self.reduce({"is": _IS, "in": _COMPARE, "::": _CAST}[word])
        node, depth = self.pop()
        if word == "::":
            self.push(Cast(node, self.type_(), True), depth + 1, pos)
        elif word == "is":
            neg = self.at("not")
            self.i += neg
            test = self.take("null", "true", "false").lower()
            self.push(IsTest(node, test, neg), depth + 1, pos)
        else:
            self.push(InList(node, self.literal_list(), negated), depth + 1, pos)
        return False

    def close(self, word: str, pos: int) -> bool:
        """A closing word: finish the innermost bracket construct (or advance a CASE)."""
        self.reduce(-1)
        frame = self.ops[-1] if self.ops else {"kind": None}
        kind = frame["kind"]
        if kind == "case" and word in ("when", "then", "else", "end"):
            return self.case_step(frame, word, pos)
        if kind == "cast" and word == "as":
            self.i += 1
            (node, depth), _ = self.pop(), self.end()
            type_ = self.type_()
            self.take(")")
            self.push(Cast(node, type_, frame["strict"]), depth + 1, pos)
            return False
        if kind == "call" and word in (",", ")"):
            self.i += 1
            frame["args"].append(self.pop())
            if word == ",":
                return True
            self.end()
            args = frame["args"]
            self.push(_checked_call(frame["name"], tuple(a for a, _ in args), frame["pos"]),
                      max(d for _, d in args) + 1, frame["pos"])
            return False
        if word == ")" and kind in ("paren", "extract"):
            self.i += 1
            self.end()
            if kind == "extract":
                node, depth = self.pop()
                self.push(Extract(frame["field"], node), depth + 1, frame["pos"])
            return False
        raise self._unexpected()

    def case_step(self, frame: dict, word: str, pos: int) -> bool:
        state = frame["state"]
        allowed = {"when": ("operand", "result"), "then": ("cond",), "else": ("result",),
                   "end": ("result", "else")}[word]
        if state not in allowed:
            raise self._unexpected()
        self.i += 1
        value = self.pop()
        if state == "operand":
            frame["operand"] = value
        elif state == "cond":
            frame["whens"].append([value, None])
        elif state == "result":
            frame["whens"][-1][1] = value
        else:
            frame["default"] = value
        frame["state"] = {"when": "cond", "then": "result", "else": "else", "end": "done"}[word]
        if word != "end":
            return True
        self.end()
        parts = [frame["operand"], frame["default"], *(x for w in frame["whens"] for x in w)]
        depth = max(p[1] for p in parts if p is not None) + 1
        operand, default = (None if p is None else p[0] for p in parts[:2])
        self.push(Case(operand, tuple((c[0], v[0]) for c, v in frame["whens"]), default), depth,
                  frame["pos"])
        return False

    def literal_list(self) -> tuple[Literal, ...]:
        self.take("(")
        items = []
        while True:
            self._check_word()
            sign = self.take("-", "+") if self.at("-", "+") else ""
            kind, text, pos = self.peek()
            low = text.lower() if kind == "id" else ""
            if not (kind == "num" or (not sign and (kind == "str" or low in ("null", "true", "false")))):
                raise Reject(f"{describe_token(kind, text)} inside IN (...) is not allowed: only a list of "
                              "literals", pos)
            self.i += 1
            leaf = _leaf(kind, text, low)
            items.append(Literal(leaf.kind, ("-" if sign == "-" else "") + leaf.text))
            self.count(pos)
            if not self.at(","):
                break
            self.i += 1
        self.take(")")
        return tuple(items)

    def type_(self) -> str:
        kind, text, pos = self.peek()
        name = text.lower() if kind == "id" else ""
        if name not in TYPES:
            raise Reject(f"type {text!r} is not allowed (allowed: {sorted(TYPES)})", pos)
        self.i += 1
        if name == "double" and self.word() == "precision":
            self.i += 1
            return "double precision"
        if not self.at("("):
            return name
        if name not in ("decimal", "numeric", "varchar", "char"):
            raise Reject(f"type {name} takes no parameters", pos)
        self.i += 1
        params = [self.take_int()]
        if self.at(",") and name in ("decimal", "numeric"):
            self.i += 1
            params.append(self.take_int())
        self.take(")")
        _check_type_params(name, params, pos)
        return f"{name}({','.join(map(str, params))})"


def _leaf(kind: str, text: str, low: str) -> Node | None:
    """The literal or column a single token stands for (None: not a leaf)."""
    if kind == "num":
        return Literal("number", text)
    if kind == "str":
        return Literal("string", text)
    if kind == "qid":
        return Column(text[1:-1])
    if low in ("null", "true", "false"):
        return Literal("null" if low == "null" else "boolean", low)
    return None


def _checked_call(name: str, args: tuple, pos: int) -> Call:
    lo, hi = ARITY[name]
    if len(args) < lo or (hi is not None and len(args) > hi):
        want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
        raise Reject(f"{name}() takes {want} argument(s); got {len(args)}", pos)
    return Call(name, args)


def _check_type_params(name: str, params: list[int], pos: int) -> None:
    if name in ("decimal", "numeric"):
        precision, scale = params[0], params[1] if len(params) > 1 else 0
        if not (1 <= precision <= 38 and 0 <= scale <= precision):
            raise Reject(f"{name}({','.join(map(str, params))}) is not a valid type: precision "
                          "must be 1-38 and scale 0-precision", pos)
    elif params[0] < 1:
        raise Reject(f"{name}({params[0]}) is not a valid type: the length must be at least 1", pos)
