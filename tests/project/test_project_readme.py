"""The getting-started page (docs/getting-started.md), run as written in a fresh project.

Every fenced block of the section, in order: the ``bash`` lines run one by one through
``bash -c`` (continuation lines joined) and the ``yaml`` block is written as the files its
``# conf/...:`` comments name. The user's own events (``data/sales.parquet``) are the one
thing the README leaves to the reader; the test puts them there after ``mlops init``. The
server line (``... &``) runs in the background on a free port (the curl line's port is
changed to match) and ``kill %1`` stops it.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from own_project import ROOT, shop_sales

pytestmark = pytest.mark.e2e


def _section() -> str:
    return (ROOT / "docs" / "getting-started.md").read_text()


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block of the section, in order."""
    return re.findall(r"```(\w+)\n(.*?)```", _section(), flags=re.S)


def bash_lines(text: str) -> list[str]:
    """Commands without their comments (a ``#`` after a space, outside quotes)."""
    lines = [re.sub(r"\s+#[^'\"]*$", "", line).strip()
             for line in text.replace("\\\n", " ").splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def yaml_files(text: str) -> dict[str, str]:
    """``# conf/x.yaml: ...`` starts a file; its lines follow until the next such comment."""
    files, current = {}, None
    for line in text.splitlines(keepends=True):
        m = re.match(r"# (conf/\S+\.yaml):", line)
        if m:
            current = m.group(1)
            files[current] = ""
        elif current:
            files[current] += line
    return files


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MLOPS_HOME", "HYDRA_FULL_ERROR")}
    # `mlops` and `python` are this environment's; PYTHONPATH makes them run this checkout
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    return env


class Walkthrough:
    """Runs the README's lines in order, keeping the working directory and the server."""

    def __init__(self, start: Path):
        self.cwd, self.port, self.server, self.outputs = start, _free_port(), None, []

    def run(self, line: str) -> None:
        if line.startswith("cd "):
            self.cwd = self.cwd / line.split()[1]
            return
        if line == "kill %1":
            self.stop()
            return
        line = line.replace("127.0.0.1:8080", f"127.0.0.1:{self.port}")
        if line.endswith("&"):
            command = f"{line[:-1].strip()} serving.port={self.port}"
            self.server = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=self.cwd,
                                           env=_env(), stdout=subprocess.PIPE,
                                           stderr=subprocess.STDOUT)
            return
        p = subprocess.run(["bash", "-c", line], cwd=self.cwd, env=_env(), capture_output=True,
                           text=True, timeout=300)
        drift_alert = p.returncode == 3 and re.search(r"action=(monitor|drift)\b", line)
        assert p.returncode == 0 or drift_alert, f"{line}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        self.outputs.append((line, p.stdout))

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.server.kill()


def test_readme_own_data_section_runs_as_written(tmp_path):
    blocks = readme_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "yaml", "bash", "bash"], blocks
    walk = Walkthrough(tmp_path)
    try:
        for line in bash_lines(blocks[0][1]):              # mlops init myproject && cd myproject
            for part in line.split(" && "):
                walk.run(part.split("#")[0].strip())
        project = walk.cwd
        assert project == tmp_path / "myproject" and (project / "data" / "orders.csv").exists()
        shop_sales().write_parquet(project / "data" / "sales.parquet")   # "put your events in data/"
        files = yaml_files(blocks[1][1])
        assert sorted(files) == ["conf/data/sales.yaml", "conf/features/shop_sales.yaml",
                                 "conf/project.yaml"]
        for rel, text in files.items():
            (project / rel).write_text(text)
        for _, text in blocks[2:]:
            for line in bash_lines(text):
                walk.run(line)
        # the README's data/ glob stays clean: training again still works after the drift files
        walk.run("mlops action=train")
    finally:
        walk.stop()
    said = dict(walk.outputs)
    answer = json.loads(next(out for line, out in walk.outputs if line.startswith("curl")))
    assert answer["model"]["name"] == "shop_model" and 0.0 <= answer["probabilities"][0] <= 1.0
    assert answer["request_ids"] == ["S9000001"]
    drift_line = next(line for line in said if "action=drift" in line)
    report = Path(re.search(r"report: (\S+drift\.html)", said[drift_line]).group(1))
    drift = json.loads(report.with_suffix(".json").read_text())
    assert {"basket", "region"} <= set(drift["features"])
    assert (project / "drift" / "first_half.csv").exists() and not list((project / "data").glob("*half*"))
