"""The window aggregates, in one table: what each computes over ``[t - period, t)``, its
empty-window value, its polars form and its row form.

Every backend reads this table (the empty-window rule exists here only):

========== ============== ============================================ =========================
aggregate  empty window   polars form (frames backend)                 row form (rows backend)
========== ============== ============================================ =========================
count      0              prefix sums of the event flag                number of events
sum        0              exact digit prefix sums (:mod:`.exact`)      :func:`.exact.exact_sum`
mean       ``default``    exact digit prefix sums / count              :func:`.exact.exact_mean`
std        ``default``    exact digit and square prefix sums           :func:`.exact.exact_std`
min, max   ``default``    range queries on a disjoint sparse table     ``min`` / ``max``
distinct   0              interval counting (O(n log n))               ``len(set(values))``
last       ``default``    backward as-of join (latest non-null value)  latest non-null value
since_last ``default``    backward as-of join (latest event time)      ``(t - latest) * 1e-6``
========== ============== ============================================ =========================

Value aggregates skip nulls; ``count`` and ``since_last`` count every event; ``std`` is
the sample deviation (``default`` below two values); ties in time keep input order
(``last`` takes the latest in input order; of equal extremes, 0.0 and -0.0, ``min`` and
``max`` take the earliest). Every form is exact (integers, an element of
the window, or an exact sum rounded once), so the backends agree bit for bit. Seconds
are microseconds times 1e-6 (polars multiplies by the reciprocal of a constant divisor).

Example:
    >>> AGGREGATES["sum"].row([1.5, 2.5], 2, None, 0)
    4.0
    >>> empty_value("mean", default=-1.0), empty_value("count", default=-1.0)
    (-1.0, 0.0)
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mlops.features.exact import exact_mean, exact_std, exact_sum

# row form: (non-null values in time order, number of events, latest event time (us) or
# None, evaluation time (us)) -> value, or None when the window holds nothing to aggregate
RowForm = Callable[[list, int, "int | None", int], object]


@dataclass(frozen=True)
class Aggregate:
    name: str
    reads_column: bool       # count and since_last read no column
    numeric_only: bool       # needs a numeric column
    empty_zero: bool         # empty window: 0 (else the spec's default)
    frame: str               # polars form: count | exact | extreme | distinct | lookup
    row: RowForm


def _std(values: list, n: int, latest, t: int):
    return exact_std(values) if len(values) > 1 else None


AGGREGATES: dict[str, Aggregate] = {a.name: a for a in (
    Aggregate("count", False, False, True, "count", lambda v, n, latest, t: float(n)),
    Aggregate("sum", True, True, True, "exact",
              lambda v, n, latest, t: exact_sum(v) if v else None),
    Aggregate("mean", True, True, False, "exact",
              lambda v, n, latest, t: exact_mean(v) if v else None),
    Aggregate("std", True, True, False, "exact", _std),
    Aggregate("min", True, True, False, "extreme",
              lambda v, n, latest, t: float(min(v)) if v else None),
    Aggregate("max", True, True, False, "extreme",
              lambda v, n, latest, t: float(max(v)) if v else None),
    Aggregate("distinct", True, False, True, "distinct",
              lambda v, n, latest, t: float(len(set(v)))),
    Aggregate("last", True, False, False, "lookup", lambda v, n, latest, t: v[-1] if v else None),
    Aggregate("since_last", False, False, False, "lookup",
              lambda v, n, latest, t: (t - latest) * (1 / 1e6) if latest is not None else None),
)}


def empty_value(agg: str, default: float | None):
    """The value of aggregate ``agg`` over a window with nothing in it."""
    return 0.0 if AGGREGATES[agg].empty_zero else default
