"""One way to declare and check parameter constraints (as scikit-learn's ``_parameter_constraints``).

A validator declares, per key, the list of constraints a value may satisfy (any one is
enough) and calls :func:`validate`; the first value that satisfies none raises a
ConfigError (or a subclass) naming the full key, the rule, the value and the fix:

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Knobs:
    ...     rate: float = 0.5
    ...     mode: str = "fast"
    ...     limit: int | None = None
    >>> RULES = {"rate": [Interval(float, 0, 1, closed="both")], "mode": [Options("fast", "slow")],
    ...          "limit": [Interval(int, 1, None), None]}
    >>> validate(Knobs(), RULES, prefix="knobs")
    >>> try:
    ...     validate(Knobs(rate=2.0), RULES, prefix="knobs")
    ... except ConfigError as err:
    ...     print(err.key, "|", err.message)
    knobs.rate | must be a float in [0, 1]; got 2.0 instead

Constraint kinds: :class:`Interval` (int or float; bounds open or closed, either may be
None), :class:`Options` (a fixed set), a Python type (``str``, ``bool``, ``dict``, ...),
``None`` (the value may be None) and :class:`Check` (a callable with its description).
Keys may be dotted (``breaker.window``): attributes or mapping keys, read one level at a time.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, Callable, ClassVar

import numpy as np

from mlops.errors import ConfigError

_CLOSED = ("both", "left", "right", "neither")
_TYPE_WORDS = {bool: "a bool", str: "a str", dict: "a mapping", list: "a list", int: "an int",
               float: "a float"}


@dataclass(frozen=True)
class Interval:
    """A finite number of ``kind`` (int or float) between ``low`` and ``high``.

    ``closed`` says which bounds belong to the interval: "both", "left", "right" or
    "neither". A None bound is unbounded. Booleans are never numbers here; a float
    interval accepts ints (as scikit-learn's ``Real``).
    """

    kind: type
    low: float | None = None
    high: float | None = None
    closed: str = "left"

    def __post_init__(self) -> None:
        if self.kind not in (int, float) or self.closed not in _CLOSED:
            raise ValueError(f"Interval needs kind int or float and closed in {_CLOSED}")

    def is_satisfied_by(self, value: Any) -> bool:
        """True when ``value`` is a finite number of the right kind inside the bounds."""
        # numbers.Integral / Real: numpy scalars count too (as in scikit-learn's Interval)
        kinds = (Integral,) if self.kind is int else (Real,)
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, kinds) \
                or not math.isfinite(value):
            return False
        left_in, right_in = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is not None and (value < self.low or (value == self.low and not left_in)):
            return False
        return not (self.high is not None
                    and (value > self.high or (value == self.high and not right_in)))

    def __str__(self) -> str:
        word = "an int" if self.kind is int else "a float"
        left_in, right_in = self.closed in ("both", "left"), self.closed in ("both", "right")
        if self.low is None and self.high is None:
            return f"{word} (finite)" if self.kind is float else word
        if self.high is None:
            return f"{word} {'>=' if left_in else '>'} {self.low:g}"
        if self.low is None:
            return f"{word} {'<=' if right_in else '<'} {self.high:g}"
        return (f"{word} in {'[' if left_in else '('}{self.low:g}, {self.high:g}"
                f"{']' if right_in else ')'}")


@dataclass(frozen=True)
class Options:
    """One of a fixed set of values (compared with ``==``, so ``1`` is not ``True``)."""

    values: tuple

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", tuple(values))  # frozen: set once, here

    def is_satisfied_by(self, value: Any) -> bool:
        """True when ``value`` is one of the options (a bool never equals an int option)."""
        return any(value == v and isinstance(value, bool) == isinstance(v, bool)
                   for v in self.values)

    def __str__(self) -> str:
        return f"one of {list(self.values)}"


@dataclass(frozen=True)
class Check:
    """Any rule a callable decides; ``description`` completes "must be ..."."""

    test: Callable[[Any], bool]
    description: str

    def is_satisfied_by(self, value: Any) -> bool:
        """What the callable says (an exception inside it counts as not satisfied)."""
        try:
            return bool(self.test(value))
        except (TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return self.description


def _satisfies(constraint: Any, value: Any) -> bool:
    if constraint is None:
        return value is None
    if isinstance(constraint, type):
        if constraint is dict:
            return isinstance(value, Mapping)
        return isinstance(value, constraint) and not (constraint is int and isinstance(value, bool))
    return constraint.is_satisfied_by(value)


def _word(constraint: Any) -> str:
    if constraint is None:
        return "None"
    if isinstance(constraint, type):
        return _TYPE_WORDS.get(constraint, f"a {constraint.__name__}")
    return str(constraint)


def describe(constraints: list) -> str:
    """The rule in words: ``a float in (0, 1] or None``."""
    words = [_word(c) for c in constraints]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


_RECORDERS: list[dict[str, str]] = []
_PREFIXES: list[str] = []


def _full_key(key: str) -> str:
    """``key`` under the prefixes of the enclosing :func:`prefixed` blocks (once)."""
    for prefix in reversed(_PREFIXES):
        if key != prefix and not key.startswith(f"{prefix}."):
            key = f"{prefix}.{key}"
    return key


@contextmanager
def prefixed(prefix: str) -> Iterator[None]:
    """Keys checked inside the block belong to the config group ``prefix``.

    A settings class names its own keys (``n_bins``); built as part of a config group it
    is ``monitoring.n_bins``, in the rules :func:`recorded` sees and in any ConfigError
    leaving the block (a key already under ``prefix`` is left alone).

    >>> try:
    ...     with prefixed("monitoring"):
    ...         check("n_bins", 1, [Interval(int, 2, None)])
    ... except ConfigError as err:
    ...     print(err.key)
    monitoring.n_bins
    """
    _PREFIXES.append(prefix)
    try:
        yield
    except ConfigError as exc:
        if exc.key == prefix or (exc.key or "").startswith(f"{prefix}."):
            raise
        raise exc.under(prefix) from None
    finally:
        _PREFIXES.pop()


@contextmanager
def recorded() -> Iterator[dict[str, str]]:
    """Every key :func:`check` sees inside the block, with its rule in words (the
    configuration reference is generated this way: validate the defaults, record the rules).

    >>> with recorded() as rules:
    ...     _ = check("serving.port", 8080, [Interval(int, 0, 65536)])
    >>> rules
    {'serving.port': 'an int in [0, 65536)'}
    """
    seen: dict[str, str] = {}
    _RECORDERS.append(seen)
    try:
        yield seen
    finally:
        _RECORDERS.remove(seen)


def check(key: str, value: Any, constraints: list, *, error: type[ConfigError] = ConfigError,
          fix: str | None = None) -> Any:
    """Return ``value`` when it satisfies one of ``constraints``; else raise ``error``
    naming ``key``, the rule, the value and a fix."""
    for seen in _RECORDERS:
        seen.setdefault(_full_key(key), describe(constraints))
    if any(_satisfies(c, value) for c in constraints):
        return value
    rule = describe(constraints)
    raise error(f"must be {rule}; got {value!r} instead", key=key,
                fix=fix or f"set {_full_key(key)} to {rule}")


def _read(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj[part] if isinstance(obj, Mapping) else getattr(obj, part)
    return obj


def validate(obj: Any, constraints: Mapping[str, list], *, prefix: str = "",
             error: type[ConfigError] = ConfigError) -> None:
    """Check every declared key of ``obj`` (a dataclass, any object or a mapping).

    Keys are checked in declaration order; the first failure raises ``error`` whose key is
    ``prefix.key`` (the full config key).
    """
    for key, rules in constraints.items():
        check(f"{prefix}.{key}" if prefix else key, _read(obj, key), rules, error=error)


class Constrained:
    """A settings dataclass that declares its constraints once, as ``CONSTRAINTS`` (as
    scikit-learn's ``_parameter_constraints``), checked whenever it is built.

    Settings classes are the config schema: Hydra builds them from the YAML, so the config
    is checked as it becomes typed; ``KEY`` is where the class sits inside its config group
    (``multivariate`` for ``monitoring.multivariate``), and the group's name is added around
    it (:func:`prefixed`). A class with a rule that one table cannot say (a rule between two
    keys) extends :meth:`check`.

    >>> @dataclass
    ... class Window(Constrained):
    ...     days: float = 14.0
    ...     CONSTRAINTS = {"days": [Interval(float, 0, None, closed="neither")]}
    >>> try:
    ...     Window(days=0)
    ... except ConfigError as err:
    ...     print(err.key, "|", err.message)
    days | must be a float > 0; got 0 instead
    """

    KEY: ClassVar[str] = ""
    CONSTRAINTS: ClassVar[Mapping[str, list]] = {}

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ConfigError naming the first key that breaks a declared constraint."""
        validate(self, self.CONSTRAINTS, prefix=self.KEY)
