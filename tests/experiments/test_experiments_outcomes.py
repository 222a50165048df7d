"""Declared A/B outcomes: per-row SQL, per-unit aggregates, derived and ratio metrics,
pre-period covariates; checked against plain Python loops over the same rows."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mlops.errors import ExperimentError
from mlops.experiments.outcomes import OutcomeSpec, unit_covariates, unit_outcomes

DECL = {
    "metrics": {
        "loss": {"expr": "CASE WHEN bad = 1 AND decision = 0 THEN price ELSE 0 END", "agg": "sum"},
        "declines": {"expr": "decision", "agg": "sum"},
        "false_declines": {"expr": "CASE WHEN bad = 0 AND decision = 1 THEN 1 ELSE 0 END"},
        "good": {"expr": "1 - bad", "agg": "sum"},
        "top_score": {"expr": "score", "agg": "max"},
        "mean_price": {"expr": "price", "agg": "mean"},
    },
    "derived": {
        "cost": "loss + 10 * false_declines",
        "fdr": {"numerator": "false_declines", "denominator": "good"},
        "cost_per_decline": "cost / (declines + 1)",   # a derived metric may use an earlier one
    },
    "covariates": {"pre_spend": {"expr": "price", "agg": "sum"}},
}


def _rows(n=400, seed=0):
    rng = np.random.default_rng(seed)
    score = rng.random(n)
    return pl.DataFrame({"shop": rng.integers(0, 30, n).astype(str), "variant":
                         np.where(rng.random(n) < 0.5, "a", "b"), "price": rng.gamma(2, 20, n),
                         "bad": (rng.random(n) < 0.1).astype(int), "score": score,
                         "decision": (score >= 0.7).astype(int)})


def test_unit_outcomes_match_python_loops():
    rows = _rows()
    spec = OutcomeSpec.from_dict(DECL, key="experiment.outcomes")
    spec.check(["shop", "price", "bad"])
    got = unit_outcomes(rows, spec, by=["shop", "variant"])
    assert got.height == rows.select("shop", "variant").unique().height
    for r in got.iter_rows(named=True):
        mine = [x for x in rows.iter_rows(named=True)
                if x["shop"] == r["shop"] and x["variant"] == r["variant"]]
        loss = sum(x["price"] for x in mine if x["bad"] == 1 and x["decision"] == 0)
        fd = sum(1 for x in mine if x["bad"] == 0 and x["decision"] == 1)
        good = sum(1 for x in mine if x["bad"] == 0)
        dec = sum(x["decision"] for x in mine)
        assert r["loss"] == pytest.approx(loss, rel=1e-12, abs=1e-12)
        assert r["declines"] == dec and r["false_declines"] == fd and r["good"] == good
        assert r["top_score"] == max(x["score"] for x in mine)
        assert r["mean_price"] == pytest.approx(np.mean([x["price"] for x in mine]), rel=1e-12)
        assert r["cost"] == pytest.approx(loss + 10 * fd, rel=1e-12, abs=1e-12)
        assert r["fdr"] == pytest.approx(fd / good if good else 0.0, rel=1e-12)
        assert r["cost_per_decline"] == pytest.approx((loss + 10 * fd) / (dec + 1), rel=1e-12)
    assert spec.names == ["loss", "declines", "false_declines", "good", "top_score",
                          "mean_price", "cost", "fdr", "cost_per_decline"]


def test_ratio_with_zero_denominator_is_zero_and_covariates_sum():
    rows = pl.DataFrame({"u": ["x", "x", "y"], "variant": ["a"] * 3, "bad": [1, 1, 0],
                         "price": [1.0, 2.0, 3.0], "score": [0.9, 0.1, 0.9],
                         "decision": [1, 0, 1]})
    spec = OutcomeSpec.from_dict(DECL, key="k")
    got = {r["u"]: r for r in unit_outcomes(rows, spec, by=["u", "variant"]).iter_rows(named=True)}
    assert got["x"]["good"] == 0 and got["x"]["fdr"] == 0.0   # no good rows: 0, not NaN
    assert got["y"]["fdr"] == 1.0
    cov = dict(unit_covariates(rows, spec, by=["u"]).iter_rows())
    assert cov == {"x": 3.0, "y": 3.0}


@pytest.mark.parametrize("decl, key, words", [
    ({"metrics": {"m": {"expr": "prise * 2"}}}, "k.metrics.m.expr", ['"prise"', 'Did you mean "price"']),
    ({"metrics": {"m": {"expr": "price +* 2"}}}, "k.metrics.m.expr", ["invalid SQL"]),
    ({"metrics": {"m": {"expr": "price", "agg": "median"}}}, "k.metrics.m.agg", ["unknown agg"]),
    ({"metrics": {"m": {"expr": "price", "how": "sum"}}}, "k.metrics.m", ["{expr: <SQL>"]),
    ({"metrics": {}}, "k.metrics", ["no outcome metrics"]),
    ({"metrics": {"m": "price"}, "derived": {"r": {"numerator": "m", "denominator": "zz"}}},
     "k.derived.r", ["'zz'"]),
    ({"metrics": {"m": "price"}, "derived": {"d": "m + later"}, }, "k.derived.d", ['"later"']),
    ({"metrics": {"m": "price"}, "covariates": {"c": {"expr": "score"}}}, "k.covariates.c.expr",
     ['"score"']),   # covariates are pre-period: no score exists there
    ({"metrics": {"m": "price"}, "derived": {"m": "m * 2"}}, "k", ["declared twice"]),
])
def test_bad_declarations_name_the_key(decl, key, words):
    with pytest.raises(ExperimentError) as err:
        OutcomeSpec.from_dict(decl, key="k").check(["price", "bad"])
    assert err.value.key == key and err.value.exit_code == 2
    for w in words:
        assert w in str(err.value)


def test_outcome_sql_goes_through_the_sandbox(tmp_path, monkeypatch):
    """An outcome expression is an expression, never a query: no file is read."""
    import polars as pl
    import pytest

    from mlops.errors import ExperimentError
    from mlops.experiments.outcomes import outcome_expr
    secret = tmp_path / "secret.csv"
    secret.write_text("TOPSECRET\n1\n")
    called = []
    monkeypatch.setattr(pl, "sql_expr", lambda *a, **k: called.append(a))
    for bad in (f"price IN (SELECT 1 FROM read_csv('{secret}'))", "shell('ls')"):
        with pytest.raises(ExperimentError) as err:
            outcome_expr(bad, key="experiment.outcomes.metrics.m.expr", allowed_columns=["price"])
        assert "TOPSECRET" not in str(err.value)
        assert err.value.key == "experiment.outcomes.metrics.m.expr"
    assert called == []  # polars never saw the text
