"""The validators declared with mlops.constraints: each names the full key and the rule."""
from __future__ import annotations

import pytest

from mlops.data.synthetic import SyntheticParams
from mlops.errors import ConfigError
from mlops.serving.settings import BreakerSettings, ServingSettings, StoreSettings


@pytest.mark.parametrize("settings,key,rule", [
    (ServingSettings(port=65536), "serving.port", "an int in [0, 65536)"),
    (ServingSettings(breaker=BreakerSettings(on_trip="default")), "serving.breaker.default_value",
     "declared"),
    (ServingSettings(breaker=BreakerSettings(on_trip="shrug")), "serving.breaker.on_trip",
     "one of ['abstain', 'refuse', 'fallback', 'default']"),
    (ServingSettings(mode="stream"), "serving.mode", "one of ['realtime', 'hybrid', 'batch']"),
    (ServingSettings(max_abs_value=0.0), "serving.max_abs_value", "a float > 0 or None"),
    (ServingSettings(store=StoreSettings(type="memcached")), "serving.store.type", "one of"),
    # min_requests may not exceed the window it is counted in
    (ServingSettings(breaker=BreakerSettings(window=50, min_requests=51)),
     "serving.breaker.min_requests", "an int in [1, 50]"),
    (ServingSettings(breaker=BreakerSettings(max_drift_share=1.0)),
     "serving.breaker.max_drift_share", "a float in [0, 1)"),
])
def test_serving_settings_name_the_key_and_the_rule(settings, key, rule):
    with pytest.raises(ConfigError) as err:
        settings.validate()
    assert err.value.key == key and rule in err.value.message


def test_serving_settings_boundaries_that_hold():
    ServingSettings(port=0, max_abs_value=None, batch_wait_ms=1000,
                    breaker=BreakerSettings(window=50, min_requests=50)).validate()


@pytest.mark.parametrize("field,value,rule", [
    ("n_users", 0, "an int >= 1"), ("fraud_rate", 0.5, "a float in [0, 0.5)"),
    ("ramp_days", 0, "a float > 0"), ("start", "2024-13-01", "an ISO date"),
])
def test_synthetic_params_name_the_key(field, value, rule):
    with pytest.raises(ConfigError) as err:
        SyntheticParams(**{field: value}).validate(prefix="data")
    assert err.value.key == f"data.{field}" and rule in err.value.message
    SyntheticParams(fraud_rate=0.0, label_delay_days=0, magnitude=0).validate()
