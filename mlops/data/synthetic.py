"""Seeded synthetic card transactions: the default data source.

Every user has a home country, a usual device and a spending level; normal
transactions arrive as a Poisson process. Fraud arrives in bursts on a
compromised card (several fast transactions, unusual country/device, high
amounts), so per-user window features carry signal. Each transaction gets its
fraud label after a delay (chargebacks take days), recorded in ``label_ts``.

Drift scenarios switch on at ``drift_start`` (day offset from the start):

- ``none``: stationary.
- ``covariate_shift``: inputs move (amounts up, more online, new devices); the
  input->label relation stays.
- ``concept_drift``: fraudsters change tactics (small domestic "card testing"
  amounts on digital goods), so the input->label relation changes while the
  inputs barely move: the Zillow failure mode.
- ``sudden``: both at once at ``drift_start``.
- ``gradual``: both, ramping linearly over ``ramp_days``.
- ``recurring``: both, switching on and off every ``period_days``.

Same seed and parameters give byte-identical frames.

Example:
    >>> df = generate(SyntheticParams(n_users=50, days=10, seed=1))
    >>> df.columns[:3]
    ['transaction_id', 'user_id', 'event_ts']
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import polars as pl

from mlops.constraints import Check, Interval, Options
from mlops.constraints import validate as check_constraints

SCENARIOS = ("none", "covariate_shift", "concept_drift", "sudden", "gradual", "recurring")
CATEGORIES = ("grocery", "restaurants", "fuel", "travel", "electronics", "fashion",
              "digital_goods", "gambling", "health", "utilities")
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "BR", "IN", "NG")
DEVICES = ("ios", "android", "web_chrome", "web_safari", "pos_terminal")
CHANNELS = ("pos", "online", "atm")
AGE_BANDS = ("18-25", "26-40", "41-65", "65+")  # a sensitive attribute for the fairness audit

_CAT_P = np.array([0.26, 0.16, 0.1, 0.05, 0.06, 0.1, 0.07, 0.02, 0.08, 0.1])
# per-event arrays of normal traffic and fraud bursts, in _fraud_bursts' return order
_EVENT_FIELDS = ("user", "day", "amount", "category", "country", "device", "channel")
_HOME_P = np.array([0.35, 0.15, 0.12, 0.1, 0.08, 0.06, 0.05, 0.04, 0.03, 0.02])


@dataclass
class SyntheticParams:
    """Parameters of :func:`generate` (mirrors ``conf/data/synthetic.yaml``)."""

    n_users: int = 2000
    days: int = 150
    start: str = "2024-01-01"
    seed: int = 7
    tx_per_user_day: float = 0.35
    fraud_rate: float = 0.015
    label_delay_days: float = 5.0
    scenario: str = "none"
    drift_start: float = 90.0
    magnitude: float = 1.0
    ramp_days: float = 20.0
    period_days: float = 14.0

    def validate(self, prefix: str = "data") -> None:
        """Raise ConfigError naming the key when a value is out of range."""
        positive = [Interval(float, 0, None, closed="neither")]
        at_least_0 = [Interval(float, 0, None)]
        check_constraints(self, {
            "n_users": [Interval(int, 1, None)], "days": [Interval(int, 1, None)],
            "tx_per_user_day": positive, "fraud_rate": [Interval(float, 0, 0.5)],
            "label_delay_days": at_least_0, "magnitude": at_least_0, "ramp_days": positive,
            "period_days": positive, "scenario": [Options(*SCENARIOS)],
            "start": [Check(datetime.fromisoformat, "an ISO date like 2024-01-01")],
        }, prefix=prefix)


def drift_intensity(params: SyntheticParams, day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (covariate, concept) drift intensity in [0, 1] for each day offset."""
    on = (day >= params.drift_start).astype(float)
    if params.scenario == "gradual":
        on = np.clip((day - params.drift_start) / params.ramp_days, 0.0, 1.0)
    elif params.scenario == "recurring":
        phase = np.floor(np.maximum(day - params.drift_start, 0) / params.period_days)
        on = on * (phase % 2 == 0)
    zero = np.zeros_like(on)
    cov = on if params.scenario in ("covariate_shift", "sudden", "gradual", "recurring") else zero
    con = on if params.scenario in ("concept_drift", "sudden", "gradual", "recurring") else zero
    return cov * params.magnitude, con * min(params.magnitude, 1.0)


def generate(params: SyntheticParams) -> pl.DataFrame:
    """Generate the transaction table, sorted by event time (see module docstring)."""
    params.validate()
    # one generator, drawn from in a fixed order: the order of the draws below is part of
    # the output (same seed, same bytes), so reordering them changes every frame
    rng = np.random.default_rng(params.seed)
    users = _users(params, rng)
    normal = _normal_traffic(params, rng, users)
    fraud = _fraud_bursts(params, rng, users["spend"], users["home"], normal["user"].size,
                          users["device"])
    cols = {k: np.concatenate([normal[k], f]) for k, f in zip(_EVENT_FIELDS, fraud)}
    cols["fraud"] = np.concatenate([np.zeros(normal["user"].size, dtype=np.int8),
                                    np.ones(fraud[0].size, dtype=np.int8)])
    return _frame(params, rng, cols, users["age_band"])


def _users(params: SyntheticParams, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per-user traits: home country, usual device, typical ticket, activity, age band."""
    n_u = params.n_users
    home = rng.choice(len(COUNTRIES), size=n_u, p=_HOME_P)
    usual_device = rng.integers(0, len(DEVICES), size=n_u)
    spend = rng.lognormal(3.3, 0.6, size=n_u)  # typical ticket per user, ~USD 30
    activity = rng.gamma(2.0, params.tx_per_user_day / 2.0, size=n_u)
    age_band = rng.choice(len(AGE_BANDS), size=n_u, p=[0.18, 0.34, 0.36, 0.12])
    return {"home": home, "device": usual_device, "spend": spend, "activity": activity,
            "age_band": age_band}


def _normal_traffic(params: SyntheticParams, rng: np.random.Generator,
                    users: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Legitimate transactions: a Poisson count per user at uniform times with a daytime
    bias; covariate drift raises amounts, travel, new devices and online share."""
    counts = rng.poisson(users["activity"] * params.days)
    user = np.repeat(np.arange(params.n_users), counts)
    n = user.size
    day = rng.uniform(0, params.days, size=n)
    hour_shift = rng.normal(0, 0.12, size=n)  # pulls events towards afternoon
    day = np.clip(np.floor(day) + np.clip(0.58 + hour_shift, 0.0, 0.999), 0, params.days - 1e-6)
    cov, _ = drift_intensity(params, day)
    amount = rng.lognormal(np.log(users["spend"][user]), 0.5) * (1.0 + 0.6 * cov)
    category = rng.choice(len(CATEGORIES), size=n, p=_CAT_P)
    abroad = rng.random(n) < 0.03 + 0.05 * np.minimum(cov, 1)
    country = np.where(abroad, rng.integers(0, len(COUNTRIES), size=n), users["home"][user])
    new_dev = rng.random(n) < 0.05 + 0.25 * np.minimum(cov, 1)
    device = np.where(new_dev, rng.integers(0, len(DEVICES), size=n), users["device"][user])
    online_p = np.clip(0.3 + 0.35 * np.minimum(cov, 1), 0, 0.95)
    u = rng.random(n)
    channel = np.where(u < online_p, 1, np.where(u < online_p + 0.08, 2, 0))
    return {"user": user, "day": day, "amount": amount, "category": category, "country": country,
            "device": device, "channel": channel}


def _frame(params: SyntheticParams, rng: np.random.Generator, cols: dict[str, np.ndarray],
           age_band: np.ndarray) -> pl.DataFrame:
    """Order events by (second, user), draw label delays and build the table."""
    user = cols["user"]
    # timestamps at 1-second resolution: ties happen, as in real logs
    seconds = np.floor(cols["day"] * 86400).astype(np.int64)
    order = np.lexsort((user, seconds))
    delay = rng.exponential(params.label_delay_days * 86400, size=user.size).astype(np.int64)
    start = datetime.fromisoformat(params.start)
    base = pl.Series([start]).cast(pl.Datetime("us"))
    ts = (base.to_numpy()[0] + seconds[order].astype("timedelta64[s]")).astype("datetime64[us]")
    label_ts = (ts + (delay[order] + 3600).astype("timedelta64[s]")).astype("datetime64[us]")
    idx = np.arange(user.size)
    return pl.DataFrame({
        "transaction_id": _ids("t", idx, 9),
        "user_id": _ids("u", user[order], 6),
        "event_ts": ts,
        "amount": np.round(cols["amount"][order], 2),
        "merchant_category": np.array(CATEGORIES)[cols["category"][order]],
        "country": np.array(COUNTRIES)[cols["country"][order]],
        "device": np.array(DEVICES)[cols["device"][order]],
        "channel": np.array(CHANNELS)[cols["channel"][order]],
        "customer_age_band": np.array(AGE_BANDS)[age_band[user[order]]],
        "is_fraud": cols["fraud"][order],
        "label_ts": label_ts,
    })


def _ids(prefix: str, values: np.ndarray, width: int) -> pl.Series:
    digits = pl.Series(values).cast(pl.String).str.zfill(width)
    return pl.select(pl.concat_str(pl.lit(prefix), digits)).to_series()


def _fraud_bursts(params: SyntheticParams, rng: np.random.Generator, spend: np.ndarray,
                  home: np.ndarray, n_normal: int, usual_device: np.ndarray):
    """Fraud as bursts of 1-5 fast transactions on a compromised card."""
    n_events = int(round(n_normal * params.fraud_rate / (1 - params.fraud_rate)))
    n_bursts = max(n_events // 3, 1) if params.fraud_rate > 0 else 0
    size = rng.integers(1, 6, size=n_bursts)
    b_user = rng.integers(0, params.n_users, size=n_bursts)
    b_day = rng.uniform(0, params.days - 0.1, size=n_bursts)
    _, con = drift_intensity(params, b_day)
    new_tactic = rng.random(n_bursts) < con  # concept drift: fraud looks ordinary
    user = np.repeat(b_user, size)
    tactic = np.repeat(new_tactic, size)
    gaps = rng.exponential(6 * 60, size=user.size) / 86400  # minutes apart
    first = np.cumsum(size) - size  # index of each burst's first event (empty without bursts)
    within = np.cumsum(gaps) - np.repeat(np.cumsum(gaps)[first] - gaps[first], size)
    day = np.minimum(np.repeat(b_day, size) + within, params.days - 1e-6)
    m = user.size
    old_amt = rng.lognormal(np.log(spend[user]) + 0.6, 0.8)
    new_amt = rng.lognormal(np.log(spend[user]) - 0.2, 0.5)
    amount = np.where(tactic, new_amt, old_amt)
    risky = np.array([CATEGORIES.index(c) for c in ("electronics", "travel", "gambling")])
    usual = rng.choice(len(CATEGORIES), size=m, p=_CAT_P)
    # the new tactic mimics the card holder: usual shops, device, country, channel mix
    category = np.where(tactic, np.where(rng.random(m) < 0.4, CATEGORIES.index("digital_goods"),
                                         usual),
                        np.where(rng.random(m) < 0.3, rng.choice(risky, size=m), usual))
    foreign = rng.integers(0, len(COUNTRIES), size=m)
    country = np.where(tactic, home[user], np.where(rng.random(m) < 0.25, foreign, home[user]))
    device = np.where(tactic, usual_device[user],
                      np.where(rng.random(m) < 0.5, rng.integers(0, len(DEVICES), size=m),
                               rng.choice([DEVICES.index("web_chrome"), DEVICES.index("android")],
                                          size=m)))
    channel = np.where(tactic, (rng.random(m) < 0.35).astype(int), (rng.random(m) < 0.6).astype(int))
    return user, day, amount, category, country, device, channel
