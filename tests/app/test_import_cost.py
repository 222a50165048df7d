"""The command line imports only what the action uses (issue 24: a CLI that starts fast).

Behaviour, not timing: a fresh interpreter imports ``mlops.cli``, answers ``--help`` or runs
``action=drift`` for real, then lists ``sys.modules``. The serving stack (FastAPI, uvicorn,
Prometheus), scikit-learn and skops cost seconds to import and none of these needs them.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVING_AND_MODELS = ("sklearn", "fastapi", "uvicorn", "starlette", "prometheus_client", "skops")

# the statistics stack (scipy.stats alone takes ~0.5 s to import): only the statistics load it
STATISTICS = ("scipy.stats", "scipy.optimize")

# runs the code, then prints the modules loaded (whatever the code exits with)
PROBE = """\
import json, sys
try:
    exec(sys.argv[1])
except SystemExit:
    pass
print(json.dumps(sorted(sys.modules)))
"""


def modules_after(code: str, *args: str, cwd: Path = ROOT, env: dict | None = None) -> set[str]:
    """Modules a fresh interpreter holds after running ``code`` (this checkout's mlops)."""
    proc = subprocess.run([sys.executable, "-c", PROBE, code, *args], cwd=cwd, text=True,
                          capture_output=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def loaded_after(code: str, *args: str, cwd: Path = ROOT, env: dict | None = None) -> set[str]:
    """Top-level packages a fresh interpreter holds after running ``code``."""
    return {name.split(".")[0] for name in modules_after(code, *args, cwd=cwd, env=env)}


def test_import_mlops_cli_loads_neither_hydra_nor_the_serving_stack():
    loaded = loaded_after("import mlops.cli")
    assert not loaded & {*SERVING_AND_MODELS, "scipy", "polars", "hydra", "jinja2"}, loaded


def test_help_loads_no_model_serving_or_statistics_library():
    loaded = loaded_after("import mlops.cli; mlops.cli.main(['--help'])")
    assert "mlops" in loaded
    assert not loaded & {*SERVING_AND_MODELS, "scipy"}, loaded


def test_the_config_layer_loads_no_statistics_serving_or_models():
    """Composing needs the schemas, not the engines behind them: ``import mlops.config``
    and registering its schemas load neither scipy.stats nor scikit-learn nor the server."""
    loaded = modules_after("import mlops.config; mlops.config.register()")
    assert "mlops.config.schema" in loaded
    unwanted = {*SERVING_AND_MODELS, *STATISTICS, "pyarrow"}
    assert not loaded & unwanted, sorted(loaded & unwanted)


def test_the_drift_chain_loads_scipy_stats_only_for_its_statistics():
    """Up to the action's own work (config, app, run context, the drift module) nothing
    loads scipy.stats; the first KS p-value does."""
    chain = ("import mlops.config, mlops.app, mlops.actions.context; mlops.config.register(); "
             "from mlops.actions.dispatch import entry_point; entry_point('drift')")
    before = modules_after(chain)
    assert "mlops.actions.drift" in before and "mlops.monitoring.stats" in before
    assert not before & {*SERVING_AND_MODELS, *STATISTICS}, sorted(before & {*SERVING_AND_MODELS, *STATISTICS})
    after = modules_after(chain + "; from mlops.monitoring.stats import ks_pvalue; ks_pvalue(0.5, 40, 50)")
    assert "scipy.stats" in after  # the probe can fail: the statistics do load it


def test_the_drift_entry_point_loads_no_serving_stack_or_scikit_learn():
    loaded = loaded_after("from mlops.actions.dispatch import entry_point; entry_point('drift')")
    assert "scipy" in loaded  # its statistics: the probe sees what the chain imports
    assert not loaded & set(SERVING_AND_MODELS), loaded


def test_a_real_drift_run_loads_no_serving_stack_or_scikit_learn(tmp_path):
    ref = pl.DataFrame({"x": [float(i % 97) for i in range(400)], "c": ["a", "b"] * 200})
    ref.write_parquet(tmp_path / "ref.parquet")
    ref.with_columns(pl.col("x") + 200.0).write_parquet(tmp_path / "cur.parquet")
    code = ("import sys, runpy; sys.argv = ['run.py', *sys.argv[2:]]; "
            f"runpy.run_path({str(ROOT / 'run.py')!r}, run_name='__main__')")
    loaded = loaded_after(code, "action=drift", f"monitoring.reference={tmp_path / 'ref.parquet'}",
                          f"monitoring.current={tmp_path / 'cur.parquet'}", f"hydra.run.dir={tmp_path / 'out'}",
                          cwd=tmp_path, env={"MLOPS_HOME": str(tmp_path / "home")})
    drift = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert drift["features"]["x"]["ks_stat"] == 1.0  # the run did its work (disjoint ranges: KS = 1)
    assert not loaded & set(SERVING_AND_MODELS), loaded
    assert "pyarrow" not in loaded  # polars reads the files; pyarrow costs ~0.15 s to import


def test_a_drift_run_on_large_samples_loads_no_scipy_stats_and_no_registry(tmp_path):
    """Above 10,000 rows the KS p-values come from scipy.special (monitoring/kolmogorov.py);
    a drift run opens no model registry. The real command line, run to its end."""
    rng = __import__("numpy").random.default_rng(0)
    pl.DataFrame({"x": rng.normal(size=12_000)}).write_parquet(tmp_path / "ref.parquet")
    pl.DataFrame({"x": rng.normal(0.01, size=12_000)}).write_parquet(tmp_path / "cur.parquet")
    code = ("import sys, runpy; sys.argv = ['run.py', *sys.argv[2:]]; "
            f"runpy.run_path({str(ROOT / 'run.py')!r}, run_name='__main__')")
    loaded = modules_after(code, "action=drift", f"monitoring.reference={tmp_path / 'ref.parquet'}",
                           f"monitoring.current={tmp_path / 'cur.parquet'}", f"hydra.run.dir={tmp_path / 'out'}",
                           "monitoring.on_drift=[]", cwd=tmp_path, env={"MLOPS_HOME": str(tmp_path / "home")})
    drift = json.loads((tmp_path / "out" / "drift.json").read_text())
    assert 0 < drift["features"]["x"]["ks_pvalue"] < 1  # the run computed its p-value
    unwanted = {"scipy.stats", "mlops.registry.registry"}
    assert not loaded & unwanted, sorted(loaded & unwanted)
    assert "mlops.monitoring.kolmogorov" in loaded


def test_serving_names_still_load_on_use():
    """The probe can fail: asking mlops.serving for its app brings FastAPI in."""
    assert "fastapi" in loaded_after("from mlops.serving import create_app")


@pytest.mark.parametrize("package", ["mlops.serving", "mlops.registry", "mlops.monitoring", "mlops.experiments"])
def test_every_lazily_exported_name_resolves(package):
    import importlib
    mod = importlib.import_module(package)
    for name in mod.__all__:
        assert getattr(mod, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mod.nope  # noqa: B018
