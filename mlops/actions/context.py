"""What every action needs: output/home directories, the data source, the plan.

The boundary: the composed DictConfig becomes the typed config tree here, once; actions
read typed dataclasses and hand the engine plain values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import polars as pl
from omegaconf import DictConfig

from mlops.config.schema import AppConfig
from mlops.config.validate import as_dict, feature_spec, synthetic_params, typed_config
from mlops.constraints import Options, check
from mlops.data.files import files_sharing_ids, scan_files
from mlops.data.synthetic import generate
from mlops.errors import ConfigError, DataError, MlopsError
from mlops.features.compile import FeaturePlan, compile_plan
from mlops.features.spec import parse_spec
from mlops.home import private_dir


@dataclass
class RunContext:
    cfg: AppConfig          # the typed config tree (OmegaConf.to_object, once, in from_config)
    output_dir: Path
    home: Path
    overrides: list[str] = field(default_factory=list)
    multirun: bool = False
    action: str = ""  # the action= this run dispatches to (one module may serve several)
    # runs another action's config (injected by the dispatcher; the lifecycle's steps)
    run_step: Callable[[DictConfig], tuple[int, Any]] | None = None
    _events: pl.DataFrame | None = None

    @classmethod
    def from_config(cls, cfg: DictConfig, *, overrides=(), multirun=False,
                    action: str = "") -> "RunContext":
        typed = typed_config(cfg)
        out = Path(str(typed.paths.output_dir)).resolve()
        # one value, the composed paths.home, so ${paths.home} in the store and log paths
        # follows it too; MLOPS_HOME enters through conf/paths/default.yaml (see there)
        home = Path(str(typed.paths.home)).expanduser().resolve()
        out.mkdir(parents=True, exist_ok=True)
        private_dir(home)  # registry, keys, prediction log, online store: 0700
        return cls(cfg=typed, output_dir=out, home=home, overrides=list(overrides),
                   multirun=multirun, action=action or str(typed.action))

    # ---- data -----------------------------------------------------------------
    def source_name(self) -> str:
        data = self.cfg.data
        if data is None:
            raise ConfigError("no data source selected", key="data",
                              fix="pass data=synthetic or data=files data.path=...")
        return check("data.source", str(data.source), [Options("synthetic", "files")])

    def scan_events(self) -> pl.LazyFrame:
        """The event source as a LazyFrame (synthetic data is generated once)."""
        source = self.source_name()
        if source == "synthetic":
            if self._events is None:
                self._events = generate(synthetic_params(self.cfg.data))
            return self._events.lazy()
        d = self.cfg.data  # data.source is files (source_name checked it)
        if not d.path:
            raise ConfigError("no event files given", key="data.path",
                              fix="pass data.path='<dir>/*.parquet' (or csv), or set it in "
                                  "your data YAML")
        spec = self.cfg.features
        ts_cols = tuple(c for c in (spec.timestamp, spec.label.available_at) if c)
        return scan_files(str(d.path), fmt=str(d.format), columns=d.columns,
                          timestamp_format=d.timestamp_format, timestamp_cols=ts_cols)

    def scan_labels(self) -> tuple[pl.LazyFrame, str] | None:
        """The separate label table (``data.labels``) and how it joins (``event_id`` | ``entity``)."""
        lab = getattr(self.cfg.data, "labels", None)  # only file sources have labels
        if lab is None or not lab.path:
            return None
        by = check("data.labels.by", str(lab.by), [Options("event_id", "entity")])
        spec = self.cfg.features
        ts_cols = tuple(c for c in (spec.timestamp, spec.label.available_at) if c)
        return scan_files(str(lab.path), fmt=str(lab.format), columns=lab.columns,
                          timestamp_format=lab.timestamp_format, timestamp_cols=ts_cols,
                          key="data.labels.path"), by

    @property
    def event_id(self) -> str | None:
        """The configured event id column (``data.event_id``), or None."""
        data = self.cfg.data
        value = getattr(data, "event_id", None)  # None: no data node, or no such key
        return str(value) if value else None

    def model_plan(self, mv, schema: dict | None = None, *, training: bool = False) -> FeaturePlan:
        """The feature plan a registered model version carries.

        Compiled from the spec recorded with the version (``config.features`` of its
        lineage), never from the current ``features=``: the model carries its plan.
        If the user explicitly selected a different spec on the command line, that is a
        SkewError naming both hashes (not when ``training``: there ``features=`` is the
        candidate's spec and the champion keeps its own).
        """
        from mlops.errors import SkewError
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

    def explain(self, exc: MlopsError) -> MlopsError:
        """``exc`` with what the run's own inputs say about it: duplicate event ids that
        come from two files of the ``data.path`` glob name the files (a copy inside the
        glob, e.g. a split written to ``data/``), where ``data.dedupe`` would hide it."""
        if not (isinstance(exc, DataError) and exc.key == "data.event_id" and self.event_id
                and "duplicate event id" in exc.message and self.source_name() == "files"):
            return exc
        d = self.cfg.data
        try:
            pairs = files_sharing_ids(str(d.path), id_column=self.event_id, columns=d.columns)
        except Exception:  # only an explanation: the original error stands without it
            return exc
        if not pairs:
            return exc
        shared = "; ".join(f"{a} and {b} share {n:,}" for a, b, n in pairs[:3])
        return DataError(f"{exc.message}: the same ids are in more than one file matched by "
                         f"data.path ({d.path}): {shared}", key=exc.key,
                         fix="keep each event in one file: move copies out of that glob or narrow "
                             "it (data.dedupe: true only if the copies are meant to be there)")

    def data_description(self) -> dict:
        return as_dict(self.cfg.data)

    def plan(self, schema: dict | None = None) -> FeaturePlan:
        """Compile the configured feature spec against the source schema."""
        if schema is None:
            schema = dict(self.scan_events().collect_schema())
        return compile_plan(feature_spec(self.cfg.features), schema)

    def data_hash(self) -> str:
        """Content hash of the source: frame values (synthetic) or file bytes (files)."""
        import glob

        from mlops.data.fingerprint import files_hash, frame_hash
        if self.source_name() == "synthetic":
            self.scan_events()
            return frame_hash(self._events)
        return files_hash(sorted(glob.glob(str(self.cfg.data.path), recursive=True)))
