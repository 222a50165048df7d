"""A team on one registry: PostgreSQL index + shared artefact directory, two "machines".

8 writer processes in two homes (sharing only the database URL and the artefact
location) register, approve with a signed key, promote and roll back at the same time;
4 of them are SIGKILLed at random points. Afterwards: versions 1..N without gaps or
duplicates, every acknowledged step kept, every artefact loads and verifies, and
``action=verify`` exits 0 from either machine; a direct UPDATE of an alias row in
PostgreSQL then makes it exit 4. Also: the database password appears in no report,
lineage, log or registry row.
"""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry, migrations
from mlops.registry.database import open_database

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def team_db(pg_server, tmp_path):
    """A fresh migrated database; returns its URL (the password goes by PGPASSWORD)."""
    url = pg_server.create_database(f"team{os.getpid()}_{len(list(tmp_path.parent.iterdir()))}")
    migrations.migrate(open_database(url, home=tmp_path, password=pg_server.password))
    return url


class _PG:
    def __init__(self, url, password):
        self.url, self.password = url, password


def test_eight_writers_on_two_machines_four_killed(tmp_path, pg_server, team_db, run_action, run_worker, fitted,
                                                   monkeypatch):
    shared = tmp_path / "shared-artifacts"
    monkeypatch.setenv("REGISTRY_ARTIFACTS", f"file://{shared}")
    out = run_worker("team", tmp_path, 8, 4, 4, 2025, cwd=tmp_path, backend=_PG(team_db, pg_server.password))
    doomed = set(out["doomed"])
    assert [s for i, s in enumerate(out["statuses"]) if i in doomed] == [-signal.SIGKILL] * 4
    assert [s for i, s in enumerate(out["statuses"]) if i not in doomed] == [0] * 4

    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    machines = [Registry(tmp_path / f"machine-{m}", url=team_db, artifacts=f"file://{shared}",
                         approvers={"alice": out["alice"]}) for m in (0, 1)]
    reg = machines[0]
    versions = reg.list_versions("fraud")
    numbers = [v.version for v in versions]
    assert numbers == list(range(1, len(numbers) + 1))              # no gap, no duplicate
    acked = {version: seed for _, seed, version in out["registered"]}
    assert len(acked) == len(out["registered"])                    # no version handed out twice
    assert set(acked) <= set(numbers)                               # nothing acknowledged was lost
    by_version = {v.version: v for v in versions}
    assert all(by_version[v].metrics["seed"] == seed for v, seed in acked.items())
    assert len(numbers) >= 4 * 4 + 4                                # survivors' rounds + one per doomed
    for mv in versions:                                             # every artefact verifies and loads
        model, _ = reg.load_model("fraud", mv.version, trusted=DEFAULT_TRUSTED_TYPES)
        np.testing.assert_array_equal(model.coef_, fitted(int(mv.metrics["seed"])).coef_)
        assert stat.S_IMODE(Path(mv.artifact_path).stat().st_mode) == 0o640
    promoted = {e["version"] for e in reg.audit_log("fraud") if e["action"] == "promote"}
    assert {v for _, _, v in out["promoted"]} <= promoted
    assert machines[1].aliases("fraud") == reg.aliases("fraud")     # both machines see one state

    common = [f"registry.url={team_db}", f"registry.artifacts=file://{shared}",
              f"+registry.approvers.alice.public_key='{out['alice']}'"]
    for m in (0, 1):
        code, d = run_action("action=verify", f"paths.home={tmp_path / f'machine-{m}'}", *common, out=f"v{m}")
        integrity = json.loads((d / "verify.json").read_text())["integrity"]
        assert code == 0 and integrity["problems"] == [], integrity["problems"]
        assert {n["kind"] for n in integrity["notes"]} <= {"interrupted_write"}

    left = sorted(n["file"] for n in integrity["notes"])            # what the killed writers left
    code, d = run_action("action=gc", "registry.gc_min_age_seconds=0", f"paths.home={tmp_path / 'machine-0'}",
                         *common, out="gc")
    assert code == 0 and sorted(json.loads((d / "gc.json").read_text())["removed"]) == left
    assert machines[1].verify()["notes"] == [] and machines[1].verify()["ok"]

    live = reg.aliases("fraud")["production"]
    other = 1 if live != 1 else 2
    with pg_server.connect(team_db.rsplit("/", 1)[1]) as conn:
        conn.execute("UPDATE aliases SET version = %s WHERE name = 'fraud' AND alias = 'production'", (other,))
    code, d = run_action("action=verify", f"paths.home={tmp_path / 'machine-1'}", *common, out="tampered")
    problems = json.loads((d / "verify.json").read_text())["integrity"]["problems"]
    assert code == 4 and [p["kind"] for p in problems] == ["alias_without_event"]
    assert reg.aliases("fraud")["production"] == live                # served state comes from the chain


def _files_text(root: Path) -> str:
    chunks = []
    for path in root.rglob("*"):
        if path.is_file():
            chunks.append(path.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


def _database_text(pg_server, database: str) -> str:
    """Every row of every table of the registry database, as text."""
    with pg_server.connect(database) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")]
        return "\n".join(str(row) for t in tables for row in conn.execute(f'SELECT * FROM "{t}"'))


def test_the_database_password_is_in_no_report_lineage_log_or_row(tmp_path, pg_server, run_action, monkeypatch,
                                                                   capfd):
    """The password reaches the server by registry.password_file (and PGPASSWORD in a
    subprocess run), and nowhere else: not in run outputs, Hydra's logs, the homes, the
    database's rows, or what was printed, through migrate, train (lineage records the
    resolved config), verify, registry and a failed login."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PGPASSWORD", raising=False)
    name = f"secret{os.getpid()}"
    url = pg_server.create_database(name)
    home = tmp_path / "home"
    pw = tmp_path / "pgpass.txt"
    pw.write_text(pg_server.password + "\n")
    pw.chmod(0o600)
    db = [f"registry.url={url}", f"registry.password_file={pw}", f"paths.home={home}"]
    data = ["data.n_users=600", "data.days=100", "data.drift_start=80"]
    assert run_action("action=train", *data, *db, out="refused")[0] == 2  # not migrated yet: exit 2
    assert run_action("action=migrate", *db, out="migrate")[0] == 0
    assert run_action("action=train", *data, *db, out="train")[0] == 0
    assert run_action("action=verify", *db, out="verify")[0] == 0
    assert run_action("action=registry", *db, out="registry")[0] in (0, 4)
    lineage = Registry(home, url=url, password=pg_server.password).get_version("fraud_detector", 1).config
    assert lineage["registry"]["url"] == url and pg_server.password not in json.dumps(lineage)
    wrong = tmp_path / "wrong.txt"
    wrong.write_text("not-the-password-" + pg_server.password[::-1] + "\n")
    wrong.chmod(0o600)
    code, d = run_action("action=verify", f"registry.url={url}", f"registry.password_file={wrong}", out="wrong")
    assert code == 2 and "password authentication failed" in json.loads((d / "result.json").read_text())["error"]
    env = dict(os.environ, PGPASSWORD=pg_server.password, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(ROOT / "run.py"), "action=registry", f"registry.url={url}",
                           f"paths.home={home}", f"hydra.run.dir={tmp_path / 'hydra_run'}"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode in (0, 4), done.stderr
    assert (tmp_path / "hydra_run" / ".hydra" / "config.yaml").exists()
    printed = capfd.readouterr()
    pw.unlink()
    wrong.unlink()
    for where, text in {"files": _files_text(tmp_path), "rows": _database_text(pg_server, name),
                        "printed": printed.out + printed.err + done.stdout + done.stderr}.items():
        assert pg_server.password not in text, where
        assert pg_server.password[::-1] not in text, where
