"""The constraint module against hand-worked cases: each kind, open and closed bounds,
None, types, callables, the error's key / rule / value / fix, dotted keys."""
from __future__ import annotations

import doctest
import math
from dataclasses import dataclass, field

import pytest

import mlops.constraints as constraints
from mlops.constraints import Check, Interval, Options, check, describe, validate
from mlops.errors import ConfigError, ExperimentError


@pytest.mark.parametrize("closed,expect", [
    # values tried: 0, 0.5, 1 on the interval 0..1
    ("both", (True, True, True)), ("left", (True, True, False)),
    ("right", (False, True, True)), ("neither", (False, True, False)),
])
def test_interval_bounds_open_and_closed(closed, expect):
    iv = Interval(float, 0, 1, closed=closed)
    assert tuple(iv.is_satisfied_by(v) for v in (0, 0.5, 1)) == expect
    assert not iv.is_satisfied_by(-1e-12) and not iv.is_satisfied_by(1 + 1e-12)


def test_interval_kinds_and_non_numbers():
    ints = Interval(int, 1, None)
    assert ints.is_satisfied_by(1) and ints.is_satisfied_by(10**9)
    assert not ints.is_satisfied_by(0) and not ints.is_satisfied_by(1.0)  # a float is no int
    assert not ints.is_satisfied_by(True)                                 # nor is a bool
    reals = Interval(float, None, None)
    assert reals.is_satisfied_by(3) and reals.is_satisfied_by(-2.5)       # ints are reals
    for bad in (math.nan, math.inf, -math.inf, "1", None, False):
        assert not reals.is_satisfied_by(bad)
    assert Interval(float, None, 5, closed="right").is_satisfied_by(5)
    assert not Interval(float, None, 5, closed="left").is_satisfied_by(5)


@pytest.mark.parametrize("iv,words", [
    (Interval(float, 0, 1, closed="both"), "a float in [0, 1]"),
    (Interval(float, 0, 1, closed="neither"), "a float in (0, 1)"),
    (Interval(float, 0, 0.5, closed="left"), "a float in [0, 0.5)"),
    (Interval(int, 1, None), "an int >= 1"),
    (Interval(float, 0, None, closed="neither"), "a float > 0"),
    (Interval(float, None, 1, closed="right"), "a float <= 1"),
    (Interval(float, None, 1, closed="neither"), "a float < 1"),
])
def test_interval_says_its_rule(iv, words):
    assert str(iv) == words


def test_options_types_none_and_checks():
    opts = Options("a", "b", 1)
    assert opts.is_satisfied_by("a") and opts.is_satisfied_by(1)
    assert not opts.is_satisfied_by("c") and not opts.is_satisfied_by(True)  # True == 1, not 1
    assert str(opts) == "one of ['a', 'b', 1]"
    assert check("k", None, [Interval(int, 0, None), None]) is None
    assert check("k", {"x": 1}, [dict]) == {"x": 1}
    with pytest.raises(ConfigError):
        check("k", 1, [bool])
    with pytest.raises(ConfigError):
        check("k", True, [int])                     # a bool is not an int here
    even = Check(lambda v: v % 2 == 0, "an even int")
    assert check("k", 4, [even]) == 4
    with pytest.raises(ConfigError, match="must be an even int; got 'x' instead"):
        check("k", "x", [even])                      # the callable's TypeError: not satisfied
    assert describe([Interval(float, 0, None, closed="neither"), None, str]) == \
        "a float > 0, None or a str"


@dataclass
class _Inner:
    window: int = 500


@dataclass
class _Outer:
    rate: float = 0.5
    mode: str = "fast"
    inner: _Inner = field(default_factory=_Inner)


RULES = {"rate": [Interval(float, 0, 1, closed="both")], "mode": [Options("fast", "slow")],
         "inner.window": [Interval(int, 10, None)]}


def test_validate_names_the_full_key_the_rule_the_value_and_the_fix():
    validate(_Outer(), RULES, prefix="knobs")
    with pytest.raises(ConfigError) as err:
        validate(_Outer(inner=_Inner(window=3)), RULES, prefix="knobs")
    e = err.value
    assert (e.key, e.message) == ("knobs.inner.window", "must be an int >= 10; got 3 instead")
    assert e.fix == "set knobs.inner.window to an int >= 10" and e.exit_code == 2
    # a mapping works the same, the first failing key wins, the error class is the caller's
    with pytest.raises(ExperimentError) as err:
        validate({"rate": 2, "mode": "warp", "inner": {"window": 1}}, RULES, error=ExperimentError)
    assert err.value.key == "rate"


def test_constraint_module_examples_run():
    assert doctest.testmod(constraints).failed == 0


def test_numpy_scalars_are_numbers_but_numpy_bools_are_not():
    import numpy as np
    assert Interval(int, 1, None).is_satisfied_by(np.int64(100))
    assert Interval(float, 0, 1).is_satisfied_by(np.float32(0.5))
    assert not Interval(int, 0, None).is_satisfied_by(np.bool_(True))
    assert not Interval(float, 0, None).is_satisfied_by(np.float64("inf"))
