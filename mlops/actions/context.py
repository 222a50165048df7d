"""What every action needs: the typed config, the run's folders, its data, plan, registry,
online store and prediction log.

The boundary: the composed DictConfig becomes the typed config tree here, once (each
group's settings check their constraints as they are built); actions read typed
settings and hand the engine plain values.
"""
from __future__ import annotations

import glob
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import polars as pl
from omegaconf import DictConfig

from mlops.config.schema import AppConfig
from mlops.config.validate import as_dict, feature_spec, typed_config
from mlops.data.files import files_sharing_ids, scan_files
from mlops.data.fingerprint import files_hash, frame_hash
from mlops.data.synthetic import generate
from mlops.errors import ConfigError, DataError, MlopsError, SkewError
from mlops.features.compile import FeaturePlan, compile_plan
from mlops.features.online.store import OnlineStore, check_trusted, open_store
from mlops.features.spec import parse_spec
from mlops.home import private_home
from mlops.registry.policy import DecisionPolicy, decision_policy
from mlops.registry.redact import redact
from mlops.training.settings import TrainingSettings

if TYPE_CHECKING:  # imported where used: action=drift loads no scikit-learn, no server, no registry
    from mlops.registry import ModelVersion, Registry
    from mlops.serving.deployment import Deployment
    from mlops.serving.state import ServingState
    from mlops.training.run import TrainingJob
    from mlops.training.table import LabelledTable

# actions that count or check approvals, and so need every declared approver's key
COUNTS_APPROVALS = ("approve", "promote", "rollback", "registry", "verify", "gc")


@dataclass
class RunContext:
    cfg: AppConfig          # the typed config tree (typed_config, once, in from_config)
    output_dir: Path
    home: Path
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    action: str = ""  # the action= this run dispatches to (one module may serve several)
    # runs another action's config (injected by the dispatcher; the lifecycle's steps)
    run_step: Callable[[DictConfig], tuple[int, Any]] | None = None
    _events: pl.DataFrame | None = None
    _registry: Registry | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_config(cls, cfg: DictConfig, *, overrides=(), multirun=False,
                    action: str = "") -> "RunContext":
        typed = typed_config(cfg)
        out = Path(typed.paths.output_dir).resolve()
        # one value, the composed paths.home, so ${paths.home} in the store and log paths
        # follows it too; MLOPS_HOME enters through conf/paths/default.yaml (see there)
        out.mkdir(parents=True, exist_ok=True)
        # registry, keys, prediction log, online store: created 0700, refused if others control it
        home = private_home(Path(typed.paths.home))
        return cls(cfg=typed, output_dir=out, home=home, overrides=list(overrides),
                   multirun=multirun, action=action or typed.action)

    # ---- data -----------------------------------------------------------------
    def source_name(self) -> str:
        """``data.source``: synthetic or files."""
        if self.cfg.data is None:
            raise ConfigError("no data source selected", key="data",
                              fix="pass data=synthetic or data=files data.path=...")
        return self.cfg.data.source

    def _timestamp_columns(self) -> tuple[str, ...]:
        spec = self.cfg.features
        return tuple(c for c in (spec.timestamp, spec.label.available_at) if c) if spec else ()

    def scan_events(self) -> pl.LazyFrame:
        """The event source as a LazyFrame (synthetic data is generated once)."""
        d = self.cfg.data
        if self.source_name() == "synthetic":
            if self._events is None:
                self._events = generate(d)
            return self._events.lazy()
        if not d.path:
            raise ConfigError("no event files given", key="data.path",
                              fix="pass data.path='<dir>/*.parquet' (or csv), or set it in "
                                  "your data YAML")
        return scan_files(d.path, fmt=d.format, columns=d.columns,
                          timestamp_format=d.timestamp_format,
                          timestamp_cols=self._timestamp_columns())

    def scan_labels(self) -> tuple[pl.LazyFrame, str] | None:
        """The separate label table (``data.labels``) and how it joins (``event_id`` | ``entity``)."""
        lab = self.cfg.data.labels if self.cfg.data is not None else None
        if lab is None or not lab.path:
            return None
        return scan_files(lab.path, fmt=lab.format, columns=lab.columns,
                          timestamp_format=lab.timestamp_format,
                          timestamp_cols=self._timestamp_columns(), key="data.labels.path"), lab.by

    @property
    def event_id(self) -> str | None:
        """The configured event id column (``data.event_id``), or None."""
        return self.cfg.data.event_id if self.cfg.data is not None else None

    def labelled_table(self, plan: FeaturePlan, *, extra: Sequence[str] = (),
                       events: pl.LazyFrame | None = None,
                       labels: tuple[pl.LazyFrame, str] | None = None) -> LabelledTable:
        """``plan``'s point-in-time features of the run's events with their labels (from the
        events or ``data.labels``) and ``extra`` columns, exactly as training builds them
        (``events`` / ``labels``: a part of the run's, e.g. one shard)."""
        from mlops.training.table import labelled_table
        return labelled_table(plan, self.scan_events() if events is None else events,
                              labels=self.scan_labels() if labels is None else labels,
                              event_id=self.event_id, dedupe=self.cfg.data.dedupe, extra=extra)

    def feature_table(self, plan: FeaturePlan, *, extra: Sequence[str] = ()) -> pl.DataFrame:
        """The frame of :meth:`labelled_table`."""
        return self.labelled_table(plan, extra=extra).frame

    def data_hash(self) -> str:
        """Content hash of the source: frame values (synthetic) or file bytes (files)."""
        if self.source_name() == "synthetic":
            self.scan_events()
            return frame_hash(self._events)
        return files_hash(sorted(glob.glob(self.cfg.data.path, recursive=True)))

    def data_description(self) -> dict:
        return as_dict(self.cfg.data)

    def explain(self, exc: MlopsError) -> MlopsError:
        """``exc`` with what the run's own inputs say about it: duplicate event ids that
        come from two files of the ``data.path`` glob name the files (a copy inside the
        glob, e.g. a split written to ``data/``), where ``data.dedupe`` would hide it."""
        if not (isinstance(exc, DataError) and exc.key == "data.event_id" and self.event_id
                and "duplicate event id" in exc.message and self.source_name() == "files"):
            return exc
        d = self.cfg.data
        try:
            pairs = files_sharing_ids(d.path, id_column=self.event_id, columns=d.columns)
        except Exception:  # only an explanation: the original error stands without it
            return exc
        if not pairs:
            return exc
        shared = "; ".join(f"{a} and {b} share {n:,}" for a, b, n in pairs[:3])
        return DataError(f"{exc.message}: the same ids are in more than one file matched by "
                         f"data.path ({d.path}): {shared}", key=exc.key,
                         fix="keep each event in one file: move copies out of that glob or narrow "
                             "it (data.dedupe: true only if the copies are meant to be there)")

    # ---- feature plans ----------------------------------------------------------
    def plan(self, schema: dict | None = None) -> FeaturePlan:
        """Compile the configured feature spec against the source schema."""
        spec = feature_spec(self.cfg.features)
        if schema is None:
            schema = dict(self.scan_events().collect_schema())
        return compile_plan(spec, schema)

    def model_plan(self, mv: ModelVersion, schema: dict | None = None, *,
                   training: bool = False) -> FeaturePlan:
        """The feature plan a registered model version carries.

        Compiled from the spec recorded with the version (``config.features`` of its
        lineage), never from the current ``features=``: the model carries its plan.
        If the user explicitly selected a different spec on the command line, that is a
        SkewError naming both hashes (not when ``training``: there ``features=`` is the
        candidate's spec and the champion keeps its own).
        """
        recorded = (mv.config or {}).get("features")
        if recorded is None:
            raise SkewError(f"model {mv.name} v{mv.version} has no recorded feature spec",
                            key="features", fix="retrain and register it with this version")
        if schema is None:
            schema = dict(self.scan_events().collect_schema())
        plan = compile_plan(parse_spec(recorded), schema)
        if plan.spec_hash != mv.feature_plan_hash:
            raise SkewError(f"model {mv.name} v{mv.version} records plan "
                            f"{str(mv.feature_plan_hash)[:12]} but its recorded spec compiles to "
                            f"{plan.short_hash}", key="features",
                            fix="the engine's plan format changed: retrain the model")
        chosen = [o.split("=", 1)[1] for o in self.overrides if o.startswith("features=")]
        if chosen and self.cfg.features is not None and not training:
            mine = compile_plan(feature_spec(self.cfg.features), schema)
            if mine.spec_hash != plan.spec_hash:
                raise SkewError(
                    f"features={chosen[-1]} compiles plan {mine.short_hash} but model {mv.name} "
                    f"v{mv.version} carries plan {plan.short_hash} ({plan.name})", key="features",
                    fix="drop features= (serving actions use the model's own plan) or serve a "
                        "model trained on that spec")
        return plan

    # ---- registry, online store, prediction log ---------------------------------
    @property
    def model_name(self) -> str:
        """``registry.model_name``, else ``model.name``."""
        r = self.cfg.registry
        return r.model_name if r is not None and r.model_name else self.cfg.model.name

    @property
    def trusted_types(self) -> list[str]:
        """The types a registry load trusts: the defaults plus ``registry.trusted_types``."""
        return self.cfg.registry.all_trusted_types()

    def registry(self) -> Registry:
        """The registry ``registry.*`` names (default: under ``paths.home``), opened once."""
        if self._registry is None:
            self._registry = self.cfg.registry.open(
                self.home, counts_approvals=self.action in COUNTS_APPROVALS)
        return self._registry

    def load_model(self, target: str | int) -> tuple[Any, ModelVersion]:
        """(model, version) of the registered model at ``target`` (an alias, ``3`` or
        ``"3"``), its artefact verified before it is loaded."""
        if isinstance(target, str) and target.isdigit():
            target = int(target)
        return self.registry().load_model(self.model_name, target, self.trusted_types)

    def decision(self, mv: ModelVersion, override: float | None, *, key: str) -> DecisionPolicy:
        """The decision policy of version ``mv``, with ``override`` (from ``key``) applied.

        Prints a warning when an override replaces the version's threshold, and a note when
        an old version (registered before policies) falls back.
        """
        policy = decision_policy(mv).overridden_by(override, key=key)
        notice = policy.notice(mv.name, mv.version)
        if notice:
            print(notice)
        return policy

    def store(self) -> OnlineStore:
        """The online store ``serving.store`` names (a dotted class must be trusted in
        ``registry.trusted_types``); the caller closes it."""
        s = self.cfg.serving.store
        check_trusted(s.type, self.trusted_types)
        return open_store(s.type, path=s.path, url=s.url, namespace=s.namespace,
                          timeout_ms=s.timeout_ms)

    # ---- serving (imported when used: most actions never serve) -------------------
    def deployment(self) -> Deployment:
        """The registered model as servers load it: each version with its own plan and
        decision (``serving.threshold`` overrides the decision, with a warning)."""
        from mlops.serving.deployment import Deployment
        schema = dict(self.scan_events().collect_schema())
        return Deployment(self.registry(), self.model_name, self.trusted_types,
                          plan_of=lambda mv: self.model_plan(mv, schema),
                          decision_of=lambda mv: self.decision(mv, self.cfg.serving.threshold,
                                                               key="serving.threshold"))

    def serving_state(self, *, breaker_scope: str | None = None) -> ServingState:
        """The serving state of the model under ``serving.alias`` (``breaker_scope``: a
        replay run's own breaker state); with ``experiment=``, its router."""
        from mlops.serving.deployment import open_deployment
        s = self.cfg.serving  # checked when built: config errors before any model is loaded
        dep = self.deployment()
        return open_deployment(dep, s, alias=str(s.alias), events=self.scan_events(),
                               event_id=self.event_id, router=self._experiment_router(dep),
                               breaker_scope=breaker_scope)

    def _experiment_router(self, dep: Deployment):
        """With ``experiment=<name>``: each record to its unit's variant model."""
        spec = self.cfg.experiment
        if spec is None:
            return None
        from mlops.experiments.inputs import guard_weights, variant_models
        from mlops.serving.deployment import model_info
        from mlops.serving.router import experiment_router
        guard_weights(self.home / "experiments", spec)  # same seed, same weights as before
        models = variant_models(self.registry(), spec, model_name=self.model_name,
                                trusted=self.trusted_types)
        return experiment_router(
            spec, models, plan_of=dep.plan_of,
            info_of=lambda mv, name: model_info(mv, dep.decision_of(mv), variant=name))

    def training_job(self, settings: TrainingSettings | None = None) -> TrainingJob:
        """This run's training inputs (``settings``: instead of ``training``, e.g. continuous
        training's recent window; the version's lineage records them)."""
        settings = self.cfg.training if settings is None else settings
        plan, recorded = self.plan(), replace(self.cfg, training=settings)
        from mlops.training.registration import Lineage
        from mlops.training.run import TrainingJob
        return TrainingJob(
            settings=settings, model=self.cfg.model, name=self.model_name, plan=plan,
            table=lambda extra: self.labelled_table(plan, extra=extra), registry=self.registry,
            trusted=self.trusted_types, estimator_trusted=self.cfg.registry.trusted_types,
            policies=self.cfg.registry.policies,
            champion_plan=lambda mv: self.model_plan(mv, training=True),
            events=self.scan_events(), event_id=self.event_id,
            lineage=lambda: Lineage(config=redact(as_dict(recorded)),
                                    estimator=self.cfg.model._target_,
                                    source_data_hash=self.data_hash()))

    @property
    def log_dir(self) -> Path:
        """The prediction log: ``serving.log_dir``, else ``<paths.home>/predictions``."""
        s = self.cfg.serving
        return Path(s.log_dir) if s is not None and s.log_dir else self.home / "predictions"
