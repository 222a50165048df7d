"""Turn a composed DictConfig into the typed config tree, checking ranges.

Hydra already rejects unknown keys and wrong types at compose time (the schemas);
the settings classes check what types cannot express as they are built, and errors
name the full key.
"""
from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mlops.config.schema import AppConfig
from mlops.constraints import prefixed
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
    ``???`` is a ConfigError naming its key. Each group's settings check their declared
    constraints as they are built (:class:`mlops.constraints.Constrained`): errors name
    the full key (``monitoring.n_bins``)."""
    from omegaconf.errors import InterpolationResolutionError, MissingMandatoryValue
    try:
        groups = {}
        for f in fields(AppConfig):
            node = cfg.get(f.name) if f.name in cfg else None
            with prefixed(f.name):  # a group's settings name their keys inside the group
                groups[f.name] = OmegaConf.to_object(node) if OmegaConf.is_config(node) else node
        return AppConfig(**groups)
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


def feature_spec(spec: FeatureSpec | DictConfig | None) -> FeatureSpec:
    """The selected feature spec (``features=<name>``: typed, or its composed node), or a
    ConfigError saying none is."""
    if OmegaConf.is_config(spec):
        with prefixed("features"):
            spec = OmegaConf.to_object(spec)
    if spec is None:
        raise ConfigError("no feature spec selected", key="features",
                          fix="pass features=<name> (a spec in your conf/features/)")
    if not isinstance(spec, FeatureSpec):
        raise ConfigError("is not a feature spec", key="features",
                          fix="start the YAML with `defaults: [feature_spec_schema, _self_]`")
    return spec
