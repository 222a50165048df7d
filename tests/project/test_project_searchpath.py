"""A project's conf/ goes in front of the built-in configs: it adds groups and replaces files."""
from __future__ import annotations

import os
import subprocess
import sys

from own_project import ROOT, mlops

PROJECT = """\
# @package _global_
defaults:
  - override /model: mine
  - _self_
model:
  name: from_project
"""


def _project(tmp_path):
    conf = tmp_path / "proj" / "conf"
    (conf / "model").mkdir(parents=True)
    (conf / "project.yaml").write_text(PROJECT)
    (conf / "model" / "mine.yaml").write_text(
        "defaults: [model_schema, _self_]\n_target_: sklearn.linear_model.Ridge\n")
    # same name as a built-in file: the project's wins
    (conf / "model" / "logreg.yaml").write_text(
        "defaults: [model_schema, _self_]\n_target_: sklearn.linear_model.LogisticRegression\n"
        "params: {C: 0.123}\n")
    return conf


def test_project_conf_adds_groups_and_replaces_builtin_files(tmp_path):
    conf = _project(tmp_path)
    r = mlops(["--cfg", "job"], cwd=conf.parent)
    assert r.returncode == 0, r.stderr
    assert "name: from_project" in r.stdout and "sklearn.linear_model.Ridge" in r.stdout
    r = mlops(["--cfg", "job", "model=logreg"], cwd=conf.parent)
    assert "C: 0.123" in r.stdout            # the project's logreg.yaml, not the built-in one


def test_run_py_config_dir_does_the_same(tmp_path):
    conf = _project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config-dir", str(conf), "--cfg", "job"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "name: from_project" in r.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "run.py"), "--config-dir", str(tmp_path / "nope")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "is not a directory" in bad.stderr
