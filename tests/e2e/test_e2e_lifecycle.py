"""The lifecycle end to end (subprocess, smaller data), and the reports in a real browser."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from support import run_cli

SIZE = ["data.n_users=1200"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def lifecycle_run(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("lifecycle")
    p = run_cli(SIZE, cwd=cwd, timeout=600)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    index = re.findall(r"^index: (.+)$", p.stdout, re.M)
    assert index, p.stdout[-2000:]
    return Path(index[-1]).parent


def test_lifecycle_shows_every_expected_event(lifecycle_run):
    r = json.loads((lifecycle_run / "lifecycle.json").read_text())
    ev = r["events"]
    assert ev["v1_in_production"] and ev["stable_period_no_drift"]
    assert ev["breaker_tripped"] and ev["data_drift_detected"] and ev["concept_drift_detected"]
    assert ev["v2_staged"] and ev["experiment_decision"] == "ship"
    assert ev["v2_promoted"] and ev["rollback_worked"]
    assert [s["step"] for s in r["steps"]][:3] == ["keygen", "features", "train_v1"]
    # the registry step verified the hash chain, every signed approval and every artefact
    reg = next(s for s in r["steps"] if s["step"] == "registry")
    integrity = json.loads((lifecycle_run / reg["href"]).with_name("registry.json").read_text())["integrity"]
    assert integrity["ok"] and integrity["problems"] == [] and len(integrity["head"]) == 64
    assert all(s["expected"] for s in r["steps"])
    live = next(s for s in r["steps"] if s["step"] == "monitor_live")
    assert live["exit_code"] == 3  # the alert exit code, expected by the lifecycle config


def test_every_report_is_small_self_contained_and_linked(lifecycle_run):
    index = (lifecycle_run / "index.html").read_text()
    htmls = sorted(lifecycle_run.glob("*/*.html"))
    assert len(htmls) >= 13
    for h in htmls:
        text = h.read_text()
        assert len(text) < 1_000_000, h
        # no network: no external scripts, stylesheets, images or fonts
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), h
        assert f"{h.parent.name}/{h.name}" in index or h.name == "index.html"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_reports_render_in_headless_chromium_without_errors(lifecycle_run, tmp_path):
    """Real browser: load each report, no console errors, key elements in the DOM, screenshots."""
    shots = lifecycle_run / "screenshots"
    shots.mkdir(exist_ok=True)
    pages = [lifecycle_run / "index.html",
             *sorted(p for p in lifecycle_run.glob("*/*.html") if p.name != "index.html")]
    for page in pages:
        profile = tmp_path / f"profile-{page.parent.name}-{page.stem}"
        common = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-quic", f"--user-data-dir={profile}",
                  "--enable-logging=stderr", "--v=0", "--proxy-server=127.0.0.1:9",
                  "--window-size=1280,1600"]
        dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                             text=True, timeout=120)
        assert dom.returncode == 0, dom.stderr[-2000:]
        html = dom.stdout
        assert 'class="verdict' in html and "<h1>" in html, page
        if page.name != "index.html":
            assert "<main>" in html
        console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line and
                   ("Error" in line or "error" in line)]
        assert not console, (page, console)
        name = f"{page.parent.name}_{page.stem}.png" if page.parent != lifecycle_run else "index.png"
        shot = subprocess.run([*common, f"--screenshot={shots / name}", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
        assert shot.returncode == 0 and (shots / name).stat().st_size > 10_000, shot.stderr[-500:]
    index_dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                                f"--user-data-dir={tmp_path / 'p-index'}", "--dump-dom",
                                (lifecycle_run / "index.html").as_uri()],
                               capture_output=True, text=True, timeout=120).stdout
    assert "What happened" in index_dom and "monitor_live" in index_dom
