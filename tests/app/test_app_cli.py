"""The CLI: config errors are short, name the key, exit 2 (ours) or non-zero (Hydra's)."""
from __future__ import annotations

import json

import pytest
from support import SMALL, run_cli


@pytest.mark.parametrize("args,key,code", [
    (["data.n_users=-5"], "data.n_users", 2),
    (["data.scenario=sideways"], "data.scenario", 2),
    (["action=trian"], "Did you mean 'train'", 2),
    (["training.objective.metric=auc"], "training.objective.metric", 2),
    (["model._target_=os.system"], "not an allowed estimator", 2),
    (["+features.windows=[{column: amount, aggs: [median], periods: [1d]}]"],
     "features.windows[0].aggs", 2),
    (["+features.windows=[{column: amount, aggs: [sum], periods: [-3d]}]"],
     "features.windows[0].periods", 2),
    (["data.n_usrs=5"], "data.n_usrs", 1),          # Hydra: unknown key (schema)
    (["data.days=many"], "data.days", 1),           # Hydra: wrong type (schema)
])
def test_bad_config_is_a_short_error_naming_the_key(tmp_path, args, key, code):
    action = [] if any(a.startswith("action=") for a in args) else ["action=train"]
    p = run_cli([*action, *SMALL, f"paths.home={tmp_path}", *args], cwd=tmp_path, timeout=120)
    assert p.returncode == code, p.stderr
    assert key in p.stderr
    assert "Traceback" not in p.stderr and len(p.stderr.splitlines()) < 12


def test_features_action_writes_parquet_json_html_and_prints_path(tmp_path):
    p = run_cli(["action=features", *SMALL], cwd=tmp_path, env={"MLOPS_HOME": str(tmp_path / "h")})
    assert p.returncode == 0, p.stderr
    report = [line for line in p.stdout.splitlines() if line.startswith("report: ")]
    html = report[0].split("report: ", 1)[1]
    run_dir = tmp_path / html.rsplit("/", 1)[0]
    summary = json.loads((run_dir / "features.json").read_text())
    assert summary["rows"] > 1000 and summary["plan"]["name"] == "fraud_v1"
    assert (run_dir / "features.parquet").exists() and (run_dir / "index.html").exists()
    assert "<script" not in (run_dir / "features.html").read_text().lower()


def test_same_seed_same_data_hash(run_action):
    _, a = run_action("action=features", *SMALL, out="a")
    _, b = run_action("action=features", *SMALL, out="b")
    _, c = run_action("action=features", *SMALL, "data.seed=99", out="c")
    ha, hb, hc = (json.loads((d / "features.json").read_text())["data"]["hash"] for d in (a, b, c))
    assert ha == hb != hc


def test_file_source_csv_with_column_mapping(run_action, tmp_path):
    """data=files: a csv glob, our names mapped from the file's, scanned lazily."""
    from mlops.data.synthetic import SyntheticParams, generate
    df = generate(SyntheticParams(n_users=150, days=30))
    renamed = df.rename({"user_id": "customer", "amount": "amt"})
    renamed.head(600).write_csv(tmp_path / "part1.csv")
    renamed.slice(600).write_csv(tmp_path / "part2.csv")
    code, d = run_action("action=features", "data=files", f"data.path={tmp_path}/part*.csv",
                         "+data.columns.customer=user_id", "+data.columns.amt=amount", out="files")
    assert code == 0, json.loads((d / "result.json").read_text())
    summary = json.loads((d / "features.json").read_text())
    assert summary["rows"] == df.height and summary["data"]["source"] == "files"
    code, d = run_action("action=features", "data=files", f"data.path={tmp_path}/nothing*.csv",
                         out="missing")
    assert code == 2 and "no file matches" in json.loads((d / "result.json").read_text())["error"]
