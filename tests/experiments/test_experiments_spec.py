"""ExperimentSpec validation, fingerprint and the weight-change guard."""
from __future__ import annotations

import hashlib
import json

import pytest

from mlops.errors import ConfigError, ExperimentError
from mlops.experiments import ExperimentSpec, Guardrail, Metric, Variant, check_weights_unchanged


def variants(*weights, shadow=()):
    out = [{"name": f"v{i}", "model": f"model@{i}", "weight": w} for i, w in enumerate(weights)]
    out += [{"name": s, "model": "model@shadow", "shadow": True} for s in shadow]
    return out


def make(**kw):
    base = {"key": "exp", "variants": variants(0.5, 0.5), "primary_metric": {"name": "conv"}}
    base.update(kw)
    return ExperimentSpec(**base)


def test_defaults_and_dict_coercion():
    spec = make(secondary_metrics=["revenue", {"name": "latency", "direction": "decrease"}],
                guardrails=[{"name": "errors", "direction": "decrease", "margin": 0.01,
                             "margin_type": "absolute"}],
                variants=variants(0.5, 0.5, shadow=["s"]))
    assert spec.seed == "exp" and spec.name == "exp" and spec.control == "v0"
    assert spec.treatments == ["v1"]
    assert isinstance(spec.variants[0], Variant) and isinstance(spec.primary_metric, Metric)
    assert isinstance(spec.guardrails[0], Guardrail)
    assert spec.secondary_metrics[1].direction == "decrease"
    assert spec.weights == {"v0": 0.5, "v1": 0.5}
    assert [v.name for v in spec.shadow_variants] == ["s"]
    assert spec.metric_names == ["conv", "revenue", "latency", "errors"]


def test_named_control_and_three_arms():
    spec = make(variants=variants(0.2, 0.3, 0.5), control="v1")
    assert spec.control == "v1" and spec.treatments == ["v0", "v2"]


def test_weights_sum_within_1e9():
    make(variants=variants(0.1, 0.2, 0.7))  # 0.1 + 0.2 + 0.7 != 1.0 exactly in floats
    with pytest.raises(ExperimentError, match="sum to 1"):
        make(variants=variants(0.5, 0.4))


@pytest.mark.parametrize("kw,match", [
    ({"variants": variants(1.0)}, "at least 2 non-shadow"),
    ({"variants": variants(1.0, shadow=["s"])}, "at least 2 non-shadow"),
    ({"variants": variants(0.5, 0.5) + [{"name": "s", "model": "m", "weight": 0.1, "shadow": True}]},
     "shadow"),
    ({"variants": variants(0.5, 0.5) + [{"name": "v0", "model": "m", "shadow": True}]}, "unique"),
    ({"variants": [{"name": "a", "model": "m", "weight": 0.5}, {"name": "b", "model": "m"}]}, r"\(0, 1\]"),
    ({"variants": [{"name": "a", "model": "", "weight": 0.5}, {"name": "b", "model": "m", "weight": .5}]},
     "model"),
    ({"variants": [{"name": "a", "model": "m", "weight": 0.5, "colour": 1},
                   {"name": "b", "model": "m", "weight": .5}]}, "colour"),
    ({"control": "nope"}, "control"),
    ({"variants": variants(0.5, 0.5, shadow=["s"]), "control": "s"}, "non-shadow"),
    ({"variants": [{"name": "s", "model": "m", "shadow": True}] + variants(0.5, 0.5)}, "first variant"),
    ({"alpha": 1.0}, "alpha"), ({"alpha": 0}, "alpha"), ({"power": 1.5}, "power"),
    ({"alpha": True}, "alpha"), ({"mde": 0}, "mde"), ({"mde_type": "percent"}, "mde_type"),
    ({"min_duration_days": -1}, "min_duration_days"), ({"correction": "bonferroni"}, "correction"),
    ({"sequential": "yes"}, "sequential"), ({"sequential_tuning": 0}, "sequential_tuning"),
    ({"primary_metric": {"name": "conv", "direction": "up"}}, "direction"),
    ({"secondary_metrics": ["conv"]}, "unique"),
    ({"guardrails": [{"name": "conv", "margin": 0.1}]}, "guardrail"),
    ({"guardrails": [{"name": "lat", "margin": -0.1}]}, "margin"),
    ({"guardrails": [{"name": "lat", "margin": 0.1, "margin_type": "pct"}]}, "margin_type"),
    ({"key": ""}, "key"), ({"cuped_covariate": ""}, "cuped_covariate"),
])
def test_invalid_specs_raise_experiment_error(kw, match):
    with pytest.raises(ExperimentError, match=match) as info:
        make(**kw)
    assert isinstance(info.value, ConfigError)  # the CLI exits 2 on these


def test_error_message_names_the_key_and_the_value():
    with pytest.raises(ExperimentError) as info:
        make(alpha=2)
    assert info.value.key == "alpha" and "got 2" in str(info.value)


def test_fingerprint_is_sha256_of_canonical_seed_and_ordered_weights():
    spec = make(seed="s1", variants=variants(0.25, 0.75, shadow=["x"]))
    canonical = json.dumps({"seed": "s1", "weights": [["v0", 0.25], ["v1", 0.75]]},
                           sort_keys=True, separators=(",", ":"))
    assert spec.fingerprint() == hashlib.sha256(canonical.encode()).hexdigest()
    assert spec.fingerprint() == make(seed="s1", variants=variants(0.25, 0.75)).fingerprint()
    assert spec.fingerprint() != make(seed="s2", variants=variants(0.25, 0.75)).fingerprint()
    assert spec.fingerprint() != make(seed="s1", variants=variants(0.75, 0.25)).fingerprint()


def test_check_weights_unchanged():
    before = make(seed="s1", variants=variants(0.5, 0.5))
    state = before.assignment_state()
    check_weights_unchanged(None, before)
    check_weights_unchanged(state, make(seed="s1", variants=variants(0.5, 0.5, shadow=["new"])))
    check_weights_unchanged({"seed": "s1", "weights": {"v0": 0.5, "v1": 0.5}}, before)
    with pytest.raises(ExperimentError, match="change the seed") as info:
        check_weights_unchanged(state, make(seed="s1", variants=variants(0.3, 0.7)))
    assert "s1" in str(info.value)
    with pytest.raises(ExperimentError, match="change the seed"):
        check_weights_unchanged(state, make(seed="s1", variants=variants(0.25, 0.25, 0.5)))
    # a new seed re-randomises everyone, so new weights are fine
    check_weights_unchanged(state, make(seed="s2", variants=variants(0.3, 0.7)))
    with pytest.raises(ExperimentError, match="previous"):
        check_weights_unchanged({"weights": []}, before)
