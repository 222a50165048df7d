"""Turn a composed DictConfig into plain engine objects, checking ranges.

Hydra already rejects unknown keys and wrong types at compose time (the schemas);
here we check what types cannot express and name the full key on failure.
"""
from __future__ import annotations

from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlops.data.synthetic import SyntheticParams
from mlops.errors import ConfigError
from mlops.features.spec import FeatureSpec


def plain(node: Any) -> Any:
    """DictConfig/ListConfig -> plain Python containers (resolved)."""
    if isinstance(node, (DictConfig,)) or OmegaConf.is_config(node):
        return OmegaConf.to_container(node, resolve=True)
    return node


def synthetic_params(data: DictConfig) -> SyntheticParams:
    names = {f.name for f in fields(SyntheticParams)}
    params = SyntheticParams(**{k: v for k, v in plain(data).items() if k in names})
    params.validate(prefix="data")
    return params


def feature_spec(node: DictConfig) -> FeatureSpec:
    """The composed ``features`` node as a FeatureSpec dataclass."""
    if node is None:
        raise ConfigError("no feature spec selected", key="features",
                          fix="pass features=<name> (a spec in your conf/features/)")
    obj = OmegaConf.to_object(node)
    if not isinstance(obj, FeatureSpec):
        raise ConfigError("is not a feature spec", key="features",
                          fix="start the YAML with `defaults: [feature_spec_schema, _self_]`")
    return obj
