"""Secrets given on the command line never reach a file the product writes: the run's JSON
results, reports, index, Hydra's saved config and overrides, the sweep report, the
registry (lineage), or what it prints."""
from __future__ import annotations

from pathlib import Path

import pytest
from support import SMALL, run_cli

from mlops.registry.redact import REDACTED, redact

TOKEN = "tok-3f9a77c1e2"
PASSWORD = "pw-51d0b6aa98"
SECRETS = [f"serving.admin_token={TOKEN}", f"serving.store.url=redis://:{PASSWORD}@127.0.0.1:6390/0",
           f"+registry.api_key={TOKEN}x", f"+monitoring.db_password={PASSWORD}y"]


@pytest.mark.parametrize("override, expected", [
    ("serving.admin_token=abc", "serving.admin_token=<redacted>"),
    ("+registry.db_password=a b c", "+registry.db_password=<redacted>"),
    ("serving.store.url=redis://user:pw@host:6379/0", "serving.store.url=redis://user:<redacted>@host:6379/0"),
    (r"serving.store.url=redis\://\:pw@h\:1/0", r"serving.store.url=redis\://\:<redacted>@h\:1/0"),  # multirun
    ("model=hgb", "model=hgb"),
    ("features.secretive_count=3", "features.secretive_count=<redacted>"),  # named like a secret: hidden
])
def test_an_override_keeps_its_key_and_loses_its_secret(override, expected):
    from mlops.registry.redact import redact_override
    assert redact_override(override) == expected


def test_secrets_inside_joined_overrides_and_text_are_redacted():
    from mlops.registry.redact import redact_overrides
    joined = "action=train,serving.admin_token=abc,seed=3"
    assert redact(joined) == "action=train,serving.admin_token=<redacted>,seed=3"
    assert redact({"error": "bad value in serving.admin_token=abc for x"}) == {
        "error": "bad value in serving.admin_token=<redacted> for x"}
    assert redact_overrides(("a=1", "x.password=2")) == ["a=1", f"x.password={REDACTED}"]


def _leaks(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and any(s.encode() in path.read_bytes() for s in (TOKEN, PASSWORD)):
                found.append(str(path))
    return found


@pytest.mark.slow
def test_a_train_run_with_secret_overrides_writes_them_nowhere(tmp_path):
    run_dir, home = tmp_path / "run", tmp_path / "home"
    done = run_cli(["action=train", *SMALL, f"paths.home={home}", f"hydra.run.dir={run_dir}", *SECRETS],
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    written = {p.name for p in run_dir.rglob("*")}
    assert {"train.json", "train.html", "index.html", "result.json", "config.yaml", "overrides.yaml"} <= written
    assert _leaks(run_dir, home) == [] and TOKEN not in done.stdout + done.stderr
    assert "serving.admin_token=&lt;redacted&gt;" in (run_dir / "index.html").read_text()  # still says what was set


@pytest.mark.slow
def test_a_sweep_with_secret_overrides_writes_them_nowhere(tmp_path):
    sweep, home = tmp_path / "sweep", tmp_path / "home"
    done = run_cli(["-m", "action=train", *SMALL, f"paths.home={home}", f"hydra.sweep.dir={sweep}",
                    "seed=1,2", *SECRETS[:2]], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (sweep / "multirun.yaml").exists() and (sweep / "sweep.html").exists()
    assert _leaks(sweep, home) == []
