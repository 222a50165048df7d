"""Turn a composed DictConfig into plain engine objects, checking ranges.

Hydra already rejects unknown keys and wrong types at compose time (the schemas);
here we check what types cannot express and name the full key on failure.
"""
from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
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


def typed_config(cfg: DictConfig) -> Any:
    """The composed config as its typed dataclass tree (``AppConfig``): the one
    ``OmegaConf.to_object`` of a run. Interpolations are resolved here; a value left
    ``???`` is a ConfigError naming its key."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue
    try:
        return OmegaConf.to_object(cfg)
    except MissingMandatoryValue as exc:
        raise ConfigError("has no value", key=str(exc.full_key),
                          fix=f"set {exc.full_key} in your YAML or pass {exc.full_key}=...") from None
    except InterpolationResolutionError as exc:
        raise ConfigError(f"cannot be resolved: {str(exc.msg).splitlines()[0]}", key=str(exc.full_key),
                          fix="fix the ${...} reference") from None


def as_dict(node: Any) -> Any:
    """A typed config node (dataclass tree) as plain dicts and lists, e.g. for lineage."""
    if is_dataclass(node) and not isinstance(node, type):
        return asdict(node)
    return plain(node)


def synthetic_params(data: Any) -> SyntheticParams:
    names = {f.name for f in fields(SyntheticParams)}
    params = SyntheticParams(**{k: v for k, v in as_dict(data).items() if k in names})
    params.validate(prefix="data")
    return params


def feature_spec(node: DictConfig) -> FeatureSpec:
    """The composed ``features`` node as a FeatureSpec dataclass."""
    if node is None:
        raise ConfigError("no feature spec selected", key="features",
                          fix="pass features=<name> (a spec in your conf/features/)")
    obj = node if isinstance(node, FeatureSpec) else OmegaConf.to_object(node)
    if not isinstance(obj, FeatureSpec):
        raise ConfigError("is not a feature spec", key="features",
                          fix="start the YAML with `defaults: [feature_spec_schema, _self_]`")
    return obj
