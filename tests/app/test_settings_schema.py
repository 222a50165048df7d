"""The engine's settings are the config schema (issue 21, item 6): composing the built-in
conf/ gives the engine's own classes, each group checks its declared constraints as it is
built and names the full key, and the derived engine objects come from the settings."""
from __future__ import annotations

import dataclasses
import typing
from datetime import datetime
from types import SimpleNamespace

import pytest
from support import compose_cfg

from mlops.config.schema import AppConfig, ExperimentConfig
from mlops.config.validate import typed_config
from mlops.constraints import Constrained, Interval, prefixed, recorded
from mlops.errors import ConfigError, FeatureSpecError
from mlops.experiments.simulation import SimulationSettings
from mlops.features.spec import parse_spec, resolve
from mlops.monitoring.concept import ConceptSettings
from mlops.monitoring.multivariate import MultivariateSettings
from mlops.monitoring.policy import DriftPolicy
from mlops.monitoring.settings import MonitoringSettings
from mlops.registry.lineage import ModelVersion
from mlops.registry.settings import RegistrySettings
from mlops.training.decision import DecisionRule
from mlops.training.settings import ModelSettings, TrainingSettings


def test_composing_gives_the_engines_own_settings(tmp_path):
    typed = typed_config(compose_cfg(["experiment=ab_v1_v2"], tmp_path))
    assert isinstance(typed.training, TrainingSettings)
    assert isinstance(typed.training.decision, DecisionRule)
    assert isinstance(typed.model, ModelSettings) and isinstance(typed.registry, RegistrySettings)
    assert isinstance(typed.monitoring, MonitoringSettings)
    assert isinstance(typed.monitoring.multivariate, MultivariateSettings)
    assert isinstance(typed.experiment, ExperimentConfig)
    assert isinstance(typed.experiment.simulation, SimulationSettings)
    assert typed.experiment.control == "control" and typed.experiment.variants[0].weight == 0.5


def test_no_group_of_the_primary_config_is_untyped():
    hints = typing.get_type_hints(AppConfig)
    assert [f.name for f in dataclasses.fields(AppConfig) if hints[f.name] is typing.Any] == []


@pytest.mark.parametrize("override,key,words", [
    ("monitoring.n_bins=1", "monitoring.n_bins", "an int >= 2"),
    ("monitoring.multivariate.folds=1", "monitoring.multivariate.folds", "an int >= 2"),
    ("monitoring.estimation.reference=holdout", "monitoring.estimation.reference", "one of"),
    ("monitoring.consistency.max_mismatch_rate=1.5", "monitoring.consistency.max_mismatch_rate",
     "a float in [0, 1]"),
    ("monitoring.performance.max_change=lots", "monitoring.performance.max_change", "a share"),
    ("monitoring.history_runs=0", "monitoring.history_runs", "an int >= 1"),
    ("monitoring.on_drift=[page]", "monitoring.on_drift", "unknown action"),
    ("training.threshold=0.3", "training.threshold", "replaced by training.decision"),
    ("training.start=yesterday", "training.start", "an ISO date"),
    ("registry.gc_min_age_seconds=-1", "registry.gc_min_age_seconds", "a float >= 0"),
    ("report.class_names=[a,b,c]", "report.class_names", "the two classes"),
    ("data.labels.by=card", "data.labels.by", "one of ['event_id', 'entity']"),
    ("data.n_users=0", "data.n_users", "an int >= 1"),
    ("serving.port=70000", "serving.port", "an int in [0, 65536)"),
    ("experiment.alpha=2", "experiment.alpha", "a float in (0, 1)"),
])
def test_a_bad_value_names_its_full_key_before_any_work(tmp_path, override, key, words):
    cfg = compose_cfg(["experiment=ab_v1_v2", override], tmp_path)
    with pytest.raises(ConfigError) as err:
        typed_config(cfg)
    assert err.value.key == key and words in err.value.message
    assert err.value.exit_code == 2


def test_the_recorded_rules_carry_the_full_keys(tmp_path):
    cfg = compose_cfg(["experiment=ab_v1_v2"], tmp_path)
    with recorded() as rules:
        typed_config(cfg)
    assert rules["monitoring.multivariate.folds"] == "an int >= 2"
    assert rules["monitoring.n_bins"] == "an int >= 2"
    assert rules["training.reference.n_bins"] == "an int >= 2"
    assert rules["registry.gc_min_age_seconds"] == "a float >= 0"


def test_prefixed_leaves_a_key_already_under_the_group_alone():
    with pytest.raises(ConfigError) as err, prefixed("monitoring"):
        raise ConfigError("bad", key="monitoring.on_drift")
    assert err.value.key == "monitoring.on_drift"
    with pytest.raises(ConfigError) as err, prefixed("monitoring"), prefixed("window"):
        raise ConfigError("bad", key="days")
    assert err.value.key == "monitoring.window.days"


def test_a_constrained_class_checks_when_built_and_extends_its_check():
    @dataclasses.dataclass
    class Knob(Constrained):
        n: int = 1
        CONSTRAINTS: typing.ClassVar[dict] = {"n": [Interval(int, 1, None)]}
        KEY: typing.ClassVar[str] = "knob"
    assert Knob(n=3).n == 3
    with pytest.raises(ConfigError) as err:
        Knob(n=0)
    assert err.value.key == "knob.n"
    assert dataclasses.replace(Knob(), n=2).n == 2  # replace builds (and checks) again
    with pytest.raises(ConfigError):
        dataclasses.replace(Knob(), n=-1)


def test_monitoring_builds_its_policy_concept_and_monitor_settings_from_its_own_keys():
    m = MonitoringSettings(n_bins=7, thresholds={"psi": 0.3}, features={"x": {"test": "psi"}},
                           drift_share=0.4, method="fixed", std_multiplier=2.5, min_chunks=4,
                           detector_stream="missed_positives",
                           detectors={"ddm": {"warning": 2.0}}, on_drift=["alert", "retrain"])
    expected = DriftPolicy(n_bins=7, thresholds={"psi": 0.3}, overrides={"x": {"test": "psi"}},
                           drift_share=0.4, method="fixed", std_multiplier=2.5, min_chunks=4)
    assert m.policy() == expected
    s = m.monitor(threshold=0.27)
    assert s.policy == expected and s.on_drift == ("alert", "retrain")
    assert s.concept == ConceptSettings(metric=None, chunk="7d", max_change=None, min_change=0.05,
                                        std_multiplier=2.5, min_chunks=4, threshold=0.27,
                                        detector_stream="missed_positives",
                                        detectors={"ddm": {"warning": 2.0}})
    # multivariate.enabled: null is on in action=monitor (off in action=drift); a set value stays
    assert m.multivariate.enabled is None and s.multivariate.enabled is True
    assert s.multivariate == dataclasses.replace(m.multivariate, enabled=True)
    off = dataclasses.replace(m, multivariate=MultivariateSettings(enabled=False))
    assert off.monitor(threshold=0.5).multivariate.enabled is False
    assert m.multivariate.when_unset(enabled=False).enabled is False


def test_continuous_training_splits_the_recent_window_70_15_15():
    s = TrainingSettings(warmup_days=5.0, description="x").recent_window(
        datetime(2024, 5, 1), 40.0, compare_with="production", description="after drift")
    assert (s.start, s.warmup_days, s.compare_with) == ("2024-03-22T00:00:00", 0.0, "production")
    assert (s.train_days, s.valid_days, s.test_days) == pytest.approx((28.0, 6.0, 6.0))
    assert s.description == "after drift" and s.decision == DecisionRule()


def test_a_version_says_its_task_and_split_bounds():
    bounds = ["2024-01-01T00:00:00", "2024-02-10T00:00:00", "2024-02-20T00:00:00",
              "2024-03-01T00:00:00"]
    mv = ModelVersion(name="m", version=1, created_at="", who="", code_version=None, parent=None,
                      artifact_sha256="", artifact_path="a", artifact_size=0, model_class="",
                      tags={"task": "regression", "split": {"bounds": bounds}})
    assert mv.task == "regression"
    assert mv.split_bounds[1] == datetime(2024, 2, 10) and len(mv.split_bounds) == 4
    old = dataclasses.replace(mv, tags={})
    assert old.task == "classification" and old.split_bounds == []


@pytest.mark.parametrize("missing", ["entity", "timestamp"])
def test_a_spec_without_entity_or_timestamp_names_the_key(tmp_path, missing):
    spec = {"name": "s", "entity": "card", "timestamp": "ts", "raw": ["amount"]}
    del spec[missing]
    with pytest.raises(FeatureSpecError) as err:
        resolve(parse_spec(spec))
    assert err.value.key == f"features.{missing}" and "has no value" in err.value.message
    cfg = compose_cfg([f"features.{missing}=???"], tmp_path)  # as a project that sets none
    with pytest.raises(ConfigError) as err:
        typed_config(cfg)
    assert err.value.key == f"features.{missing}"


def test_the_plan_label_is_typed(tmp_path):
    import polars as pl

    from mlops.features.compile import compile_plan
    plan = compile_plan({"name": "s", "entity": "card", "timestamp": "ts", "raw": ["x"],
                         "label": {"column": "y", "available_at": "y_ts"}},
                        {"card": pl.String, "ts": pl.Datetime("us"), "x": pl.Float64,
                         "y": pl.Int8, "y_ts": pl.Datetime("us")})
    assert (plan.label.column, plan.label.available_at, plan.label.task) == ("y", "y_ts", None)
    assert plan.describe()["label"] == {"column": "y", "available_at": "y_ts", "task": None}


def test_the_role_columns_of_a_spec_are_never_drift_features():
    spec = parse_spec({"name": "s", "entity": "card", "timestamp": "ts", "raw": ["x"],
                       "label": {"column": "y"}})
    assert list(spec.role_columns()) == ["card", "ts", "y"]
    assert SimpleNamespace(**spec.role_columns()).card.startswith("the entity key")
