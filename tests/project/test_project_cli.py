"""The ``mlops`` command's own answers: help, version, ``python -m mlops``, and a config
that does not compose as one line on stderr (never a traceback)."""
from __future__ import annotations

import subprocess
import sys

import pytest
from own_project import ROOT, mlops

import mlops as package


def test_help_lists_the_actions_and_version_prints_the_package_version(tmp_path):
    from mlops.actions.dispatch import ACTIONS
    helped = mlops(["--help"], cwd=tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: mlops init")
    assert all(name in helped.stdout for name in ACTIONS) and not helped.stderr
    version = mlops(["--version"], cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == f"mlops {package.__version__}"


def test_python_dash_m_mlops_is_the_same_command(tmp_path):
    p = subprocess.run([sys.executable, "-m", "mlops", "-V"], cwd=tmp_path, capture_output=True,
                       text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0 and p.stdout.strip() == f"mlops {package.__version__}", p.stderr


@pytest.fixture
def project(tmp_path):
    assert mlops(["init", "p"], cwd=tmp_path).returncode == 0
    return tmp_path / "p"


def _one_line_error(p: subprocess.CompletedProcess) -> str:
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), p.stderr
    return lines[0]


def test_broken_yaml_is_one_line_naming_file_and_line(project):
    path = project / "conf" / "project.yaml"
    path.write_text(path.read_text() + "extra: [1, 2\n")
    line = _one_line_error(mlops(["action=train"], cwd=project))
    n = len(path.read_text().splitlines())
    assert f"conf/project.yaml line {n}" in line or f"conf/project.yaml line {n + 1}" in line
    assert "invalid YAML" in line


def test_missing_config_option_is_one_line_listing_the_options(project):
    (project / "conf" / "data" / "events.yaml").unlink()  # project.yaml still names it
    line = _one_line_error(mlops(["action=train"], cwd=project))
    assert "Could not find 'data/events'" in line and "files, regime_change, synthetic" in line
    line = _one_line_error(mlops(["model=nope"], cwd=project))
    assert "'model/nope'" in line and "logreg" in line and "model_schema" not in line


def test_unknown_key_and_wrong_type_are_one_line_with_a_fix(project):
    line = _one_line_error(mlops(["action=train", "trainig.train_days=3"], cwd=project))
    assert "'trainig.train_days'" in line and "Fix:" in line and "+trainig" not in line
    line = _one_line_error(mlops(["action=train", "training.train_days=many"], cwd=project))
    assert "training.train_days=many" in line and "Fix:" in line


def test_full_error_still_gives_the_traceback_when_asked(project):
    path = project / "conf" / "project.yaml"
    path.write_text(path.read_text() + "extra: [1, 2\n")
    p = subprocess.run([sys.executable, "-m", "mlops", "action=train"], cwd=project, text=True,
                       capture_output=True, env={"PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1",
                                                 "PATH": "/usr/bin:/bin"})
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_a_copy_of_the_events_inside_the_data_glob_is_named_not_deduped(project):
    """The issue's drift example: a split written to data/ doubles the events of data/*.csv."""
    import polars as pl
    orders = pl.read_csv(project / "data" / "orders.csv")
    orders.head(1000).write_csv(project / "data" / "first_half.csv")
    line = _one_line_error(mlops(["action=train"], cwd=project))
    assert "1,000 duplicate event id(s)" in line
    assert "data/first_half.csv and data/orders.csv share 1,000" in line
    assert "move copies out of that glob" in line


def test_the_column_types_hint_runs_as_written_and_works(project):
    """A column numeric in one dataset and text in the other: the hint's override, pasted
    after the same command, makes the comparison run."""
    import re

    import polars as pl
    (project / "drift").mkdir()
    pl.DataFrame({"x": [1, 2, 3] * 40, "c": ["a", "b", "c"] * 40}).write_csv(project / "drift" / "a.csv")
    pl.DataFrame({"x": ["1", "2", "n/a"] * 40, "c": ["a", "b", "c"] * 40}).write_csv(project / "drift" / "b.csv")
    command = ["action=drift", "monitoring.reference=drift/a.csv", "monitoring.current=drift/b.csv"]
    line = _one_line_error(mlops(command, cwd=project))
    hint = re.search(r"\+monitoring\.column_types\.x=\w+", line).group(0)
    p = mlops([*command, hint], cwd=project)
    assert p.returncode in (0, 3), p.stderr
    assert "report: " in p.stdout
