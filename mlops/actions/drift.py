"""``action=drift``: compare two datasets without a model or a registry.

    python run.py action=drift monitoring.reference='ref/*.parquet' monitoring.current='new/*.csv'

Runs the statistics, deciding tests, thresholds and per-feature overrides of
``action=monitor`` over the columns both datasets share (or ``monitoring.columns``), plus
the multivariate test when asked (``monitoring.multivariate.enabled=true``), and writes
``drift.json`` + ``drift.html``. Every reference value is kept (exact KS and Wasserstein)
unless ``monitoring.reference_max_rows`` declares a sample. Exit code 3 on dataset
drift when ``alert`` is in ``monitoring.on_drift`` (the alert goes to
``paths.home/alerts.jsonl``, as for monitor). ``monitoring.reference`` ending in ``.npz`` is a
fitted reference (e.g. a model's) instead of data files.
"""
from __future__ import annotations

import glob
import time

from mlops.actions.context import RunContext
from mlops.actions.outputs import ActionResult, write_report
from mlops.data.files import read_files
from mlops.errors import ConfigError, DataError
from mlops.monitoring.alerts import append_alert
from mlops.monitoring.compare import DatasetDriftResult, compare_datasets
from mlops.monitoring.history import record_run
from mlops.monitoring.reference import Reference
from mlops.monitoring.verdict import check_on_drift
from mlops.reports.views.monitor import drift_display, over_time


def run(ctx: RunContext) -> ActionResult:
    """Compare ``monitoring.current`` with ``monitoring.reference`` (files or a .npz)."""
    t0, mc = time.perf_counter(), ctx.cfg.monitoring
    for key in ("reference", "current"):
        if not getattr(mc, key) or getattr(mc, key) == "training":
            raise ConfigError("is required for action=drift", key=f"monitoring.{key}",
                              fix=f"pass monitoring.{key}=<parquet or csv glob>")
    on_drift = check_on_drift(mc.on_drift, fix="use alert (the others need a model)")
    # off by default here: a quick two-file comparison; monitoring.multivariate.enabled=true runs it
    multivariate = mc.multivariate.when_unset(enabled=False)
    ref_spec, cur_spec = str(mc.reference), mc.current
    current = read_files(cur_spec, key="monitoring.current")
    fitted = ref_spec.endswith(".npz")
    spec = ctx.cfg.features  # the columns it gives a role are never compared
    never = {**({ctx.event_id: "the event id (data.event_id)"} if ctx.event_id else {}),
             **(spec.role_columns() if spec is not None else {})}
    try:
        reference = Reference.load(ref_spec) if fitted else read_files(ref_spec, key="monitoring.reference")
        drift, ref_rows = compare_datasets(reference, current, mc.policy(), multivariate=multivariate,
                                           columns=mc.columns, column_types=mc.column_types,
                                           exclude=never, reference_max_rows=mc.reference_max_rows)
    except (ConfigError, DataError) as exc:
        if exc.key and exc.key.startswith("monitoring."):
            raise
        raise type(exc)(exc.message, key=f"monitoring.{exc.key}" if exc.key else "monitoring",
                        fix=exc.fix) from None
    result = DatasetDriftResult(
        drift=drift, multivariate_acts=mc.multivariate.act,
        reference={"path": ref_spec, "kind": "fitted reference (.npz)" if fitted else "data",
                   "files": 1 if fitted else len(glob.glob(ref_spec, recursive=True)),
                   "rows": ref_rows},
        current={"path": cur_spec, "files": len(glob.glob(cur_spec, recursive=True)),
                 "rows": current.height})
    reasons = result.reasons()
    if reasons and "alert" in on_drift:
        path = append_alert(ctx.home, series=f"drift:{ref_spec}", reference=ref_spec,
                            current=cur_spec, reasons=reasons, run=str(ctx.output_dir))
        result.actions.append({"action": "alert", "detail": "; ".join(reasons), "record": path})
    result.actions += [{"action": skipped, "detail": "skipped: it needs a model (action=monitor)"}
                       for skipped in sorted(set(on_drift) - {"alert"})]
    result.duration_s = round(time.perf_counter() - t0, 3)
    out = result.to_json()
    records, skipped = record_run(ctx.home, out, series=f"drift:{ref_spec}", kind="drift",
                                  run_dir=str(ctx.output_dir), last=mc.history_runs,
                                  alerted=any(a["action"] == "alert" for a in result.actions))
    max_charts = ctx.cfg.report.max_chart_features
    write_report(ctx, "drift", out, title="Drift: reference vs current data",
                 context={**drift_display(out, max_charts, over_time(records, skipped, out,
                                                                     max_panels=max_charts)),
                          "history_runs": mc.history_runs})
    return ActionResult(result=out, exit_code=3 if result.found and "alert" in on_drift else 0,
                        metrics={"drift_share": out["drift_share"], "n_drifted": out["n_drifted"]})
