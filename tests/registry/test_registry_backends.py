"""Where the registry lives: registry.url and registry.artifacts forms, password files,
the versioned migrations, shared artefact directories, and PostgreSQL-only attacks
(TRUNCATE, a disabled trigger, a disarmed trigger function) and failures (wrong
password, server down, a forked child)."""
from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import pytest

from mlops.errors import ConfigError, RegistryError
from mlops.registry import DEFAULT_TRUSTED_TYPES, Registry, integrity, migrations
from mlops.registry import artifacts as skops_files
from mlops.registry.artifact_store import DirectoryArtifacts, open_artifacts, relative
from mlops.registry.database import parse_url, read_password_file


def test_registry_url_forms(tmp_path):
    home = tmp_path / "home"
    assert parse_url(None, home=home).path == home / "registry" / "registry.db"
    assert parse_url("idx/reg.db", home=home).path == home / "idx" / "reg.db"       # relative: under home
    assert parse_url("sqlite:///idx/reg.db", home=home).path == home / "idx" / "reg.db"
    assert parse_url("sqlite:////srv/reg.db", home=home).path == Path("/srv/reg.db")  # four slashes: absolute
    pg = parse_url("postgres://ml@db.internal:5433/models?sslmode=require", home=home)
    assert (pg.dialect, pg.conninfo) == ("postgresql", "postgresql://ml@db.internal:5433/models?sslmode=require")
    assert pg.display == pg.conninfo


@pytest.mark.parametrize(("url", "text"), [
    ("postgresql://ml:hunter2@db/models", "passwords never go in registry.url"),
    ("mysql://ml@db/models", "unknown database scheme 'mysql'"),
    ("postgresql://ml@db", "postgresql://user@host:port/dbname"),
    ("postgresql://ml@db:notaport/models", "bad port"),
    ("sqlite://reg.db", "sqlite:///<relative path>"),
])
def test_bad_registry_urls_name_the_key(tmp_path, url, text):
    with pytest.raises(ConfigError, match=text) as err:
        parse_url(url, home=tmp_path)
    assert err.value.key == "registry.url" and "hunter2" not in str(err.value)


def test_password_files_are_read_and_must_be_private(tmp_path):
    path = tmp_path / "pw"
    path.write_text("s3cret\nignored\n")
    path.chmod(0o600)
    assert read_password_file(path) == "s3cret"
    path.chmod(0o640)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_password_file(path)
    with pytest.raises(ConfigError, match="does not exist"):
        read_password_file(tmp_path / "missing")


def test_artifact_store_forms(tmp_path):
    home = tmp_path / "home"
    default = open_artifacts(None, home=home)
    assert isinstance(default, DirectoryArtifacts) and default.directory == home / "registry" / "artifacts"
    assert not default.shared
    assert open_artifacts("art", home=home).directory == home / "art"
    shared = open_artifacts("file:///mnt/team/artifacts", home=home)
    assert shared.shared and shared.directory == Path("/mnt/team/artifacts")
    for bad, text in [("file://nas/team", "file:///absolute/path"), ("ftp://x/y", "unknown artefact store")]:
        with pytest.raises(ConfigError, match=text):
            open_artifacts(bad, home=home)


def test_one_table_layout_for_both_dialects():
    sqlite_sql, pg_sql = migrations.render_tables("sqlite"), migrations.render_tables("postgresql")
    assert len(sqlite_sql) == len(pg_sql) == 5
    # same tables and columns; only the types of a few columns differ
    for lite, pg in zip(sqlite_sql, pg_sql):
        assert [line.split()[0] for line in lite.splitlines()] == [line.split()[0] for line in pg.splitlines()]
    assert "feature_plan_version ," in " ".join(sqlite_sql[0].split())   # no type: SQLite keeps int or str
    assert "feature_plan_version JSONB," in " ".join(pg_sql[0].split())


def test_registry_postgres_yaml_reads_the_team_environment(tmp_path, monkeypatch):
    from support import compose_cfg
    monkeypatch.setenv("MLOPS_REGISTRY_URL", "postgresql://ml@db.internal:5432/team")
    monkeypatch.setenv("MLOPS_ARTIFACTS", "file:///mnt/team/artifacts")
    rc = compose_cfg(["registry=postgres"], tmp_path).registry
    assert (rc.url, rc.artifacts, rc.password_file) == ("postgresql://ml@db.internal:5432/team",
                                                        "file:///mnt/team/artifacts", None)
    assert rc.policies["production"]  # the gates of registry/default.yaml and the project still apply
    monkeypatch.delenv("MLOPS_ARTIFACTS")
    assert compose_cfg(["registry=postgres"], tmp_path).registry.artifacts is None  # local default


def test_action_migrate_on_the_embedded_default(run_action, capsys):
    assert run_action("action=migrate", out="m")[0] == 0
    assert f": version 0 -> {migrations.SCHEMA_VERSION}; applied: 2 (hash-chained" in capsys.readouterr().out
    assert run_action("action=migrate", out="m2")[0] == 0  # (opening a SQLite registry does the same)
    assert f"is current (version {migrations.SCHEMA_VERSION})" in capsys.readouterr().out


def test_sqlite_migrates_itself_and_refuses_a_newer_schema(tmp_path, logreg):
    reg = Registry(tmp_path)
    assert migrations.current_version(reg.database) == migrations.SCHEMA_VERSION
    assert migrations.migrate(reg.database)["applied"] == []          # idempotent
    reg.register("fraud", logreg, metadata={"feature_plan_version": 3})
    with sqlite3.connect(reg.db_path) as conn:
        conn.execute(f"PRAGMA user_version = {migrations.SCHEMA_VERSION + 1}")
    with pytest.raises(RegistryError, match="newer than this code understands"):
        Registry(tmp_path)
    with sqlite3.connect(reg.db_path) as conn:
        conn.execute("PRAGMA user_version = 1")
    with pytest.raises(RegistryError, match="from before the hash chain"):
        Registry(tmp_path)


def test_a_shared_directory_store_is_group_readable_and_content_addressed(tmp_path, logreg, hgb_pipeline):
    shared = tmp_path / "share"
    a = Registry(tmp_path / "machine-a", artifacts=f"file://{shared}")
    b = Registry(tmp_path / "machine-b", url=f"sqlite:///{tmp_path / 'machine-a' / 'registry' / 'registry.db'}",
                 artifacts=f"file://{shared}")
    v1 = a.register("fraud", logreg, metadata={}, actor="bob")
    v2 = b.register("fraud", hgb_pipeline, metadata={}, actor="carol")
    assert (v1.version, v2.version) == (1, 2)
    data = v1.artifact_path.read_bytes()
    assert b.artifacts.put(v1.artifact_sha256, ".skops", data) == a.artifacts.put(v1.artifact_sha256, ".skops",
                                                                                   data)  # same bytes, one file
    files = [p for p in shared.rglob("*") if p.is_file()]
    assert sorted(files) == sorted({v1.artifact_path, v2.artifact_path})
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}
    assert {stat.S_IMODE(p.stat().st_mode) for p in shared.iterdir()} == {0o2770}
    assert a.load_model("fraud", 2, DEFAULT_TRUSTED_TYPES)[1].artifact_path == v2.artifact_path
    assert a.verify()["ok"] and a.verify()["notes"] == []
    assert not (tmp_path / "machine-b" / "registry" / "artifacts").exists()


def test_gc_puts_back_a_file_whose_row_was_committed_between_its_two_looks(tmp_path, logreg, monkeypatch):
    """gc hides its candidates, reads the index again, and restores what a registration
    committed meanwhile (one whose file was written before gc hid it)."""
    reg = Registry(tmp_path)
    stray = reg.artifacts.put("ab" * 32, ".skops", b"left by a killed registration")
    data = skops_files.dump_model(logreg)
    written = reg.artifacts.put(skops_files.sha256_bytes(data), ".skops", data)  # its row not committed yet
    looks = []

    def used():
        looks.append(1)
        if len(looks) == 2:  # between gc's two looks the registration commits, without writing again
            with monkeypatch.context() as m:
                m.setattr(skops_files, "dump_model", lambda model: data)  # skops bytes vary per dump
                m.setattr(reg.artifacts, "put", lambda sha, suffix, data: relative(sha, suffix))
                reg.register("fraud", logreg, metadata={}, actor="bob")
        return reg._used_files()

    removed = integrity.remove_interrupted(reg.artifacts, used, min_age_seconds=0, dry_run=False)
    assert removed == [reg.artifacts.locate(stray)] and reg.artifacts.exists(written)
    assert reg.verify()["ok"] and reg.verify()["notes"] == []


def test_a_registration_whose_file_vanished_before_its_commit_writes_it_again(tmp_path, logreg):
    """The other order: gc removed the file after the registration wrote it and before the
    row existed; the registration checks after its commit and writes the file again."""
    reg = Registry(tmp_path)
    reg._after_artifact_write = lambda: [p.unlink() for p in reg.artifacts_dir.rglob("*.skops")]
    mv = reg.register("fraud", logreg, metadata={}, actor="bob")
    assert mv.artifact_path.exists() and reg.verify()["ok"]
    assert reg.load_model("fraud", 1, DEFAULT_TRUSTED_TYPES)[1].version == 1


def test_a_forked_child_opens_its_own_connection(tmp_path, logreg, make_registry):
    reg = make_registry(tmp_path)
    reg.register("fraud", logreg, metadata={}, actor="bob")  # the parent now keeps a connection
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if reg.register("fraud", logreg, metadata={}, actor="child").version == 2 else 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0
    assert [v.version for v in reg.list_versions("fraud")] == [1, 2]  # the parent's connection still works
    assert reg.register("fraud", logreg, metadata={}, actor="bob").version == 3


def test_a_nested_operation_gets_a_connection_of_its_own(tmp_path, logreg, make_registry):
    reg = make_registry(tmp_path)
    reg.register("fraud", logreg, metadata={}, actor="bob")
    with reg.database.read() as conn:  # the kept connection is inside a transaction
        assert reg.list_models() == ["fraud"] and conn.execute("SELECT COUNT(*) FROM versions").fetchone()[0] == 1
    assert reg.register("fraud", logreg, metadata={}, actor="bob").version == 2


# ------------------------------------------------------------------- PostgreSQL only
@pytest.fixture
def pg(pg_backend):
    return pg_backend


@pytest.fixture
def make_pg(pg):
    return lambda home, **kwargs: Registry(home, **pg.kwargs, **kwargs)


@pytest.mark.slow
def test_an_unmigrated_postgres_database_is_refused_until_action_migrate(pg_server, tmp_path, run_action,
                                                                          monkeypatch, capsys):
    url = pg_server.create_database(f"fresh{os.getpid()}")
    with pytest.raises(RegistryError, match="has no registry schema yet.*action=migrate") as err:
        Registry(tmp_path, url=url, password=pg_server.password)
    assert err.value.exit_code == 2
    monkeypatch.setenv("PGPASSWORD", pg_server.password)
    assert run_action("action=migrate", f"registry.url={url}", out="m1")[0] == 0
    assert f"registry schema {url}: version 0 -> {migrations.SCHEMA_VERSION}" in capsys.readouterr().out
    assert run_action("action=migrate", f"registry.url={url}", out="m2")[0] == 0
    assert "is current" in capsys.readouterr().out
    assert Registry(tmp_path, url=url).verify()["ok"]


@pytest.mark.slow
def test_postgres_truncate_and_disabled_triggers(tmp_path, logreg, make_pg, pg):
    reg = make_pg(tmp_path)
    reg.register("fraud", logreg, metadata={}, actor="bob")
    for table in ("audit", "versions", "approvals"):
        with pytest.raises(pg.append_only_error, match="append-only: TRUNCATE"):
            pg.sql(reg, f"TRUNCATE {table} CASCADE")
    pg.sql(reg, "ALTER TABLE audit DISABLE TRIGGER audit_no_update")
    report = reg.verify()
    assert [p["kind"] for p in report["problems"]] == ["disabled_trigger"]
    pg.sql(reg, "ALTER TABLE audit ENABLE TRIGGER audit_no_update")
    assert reg.verify()["ok"]


@pytest.mark.slow
def test_postgres_a_disarmed_trigger_function_is_detected(tmp_path, logreg, make_pg, pg):
    reg = make_pg(tmp_path)
    reg.register("fraud", logreg, metadata={"metrics": {"auc": 0.7}}, actor="bob")
    pg.sql(reg, "CREATE OR REPLACE FUNCTION registry_append_only() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RETURN NEW; END $$",
           "UPDATE versions SET metrics = '{\"auc\": 0.99}'")
    kinds = {p["kind"] for p in reg.verify()["problems"]}
    assert kinds == {"changed_trigger", "version_changed"}


@pytest.mark.slow
def test_postgres_keeps_an_int_an_int_and_a_string_a_string(tmp_path, logreg, make_pg, pg):
    reg = make_pg(tmp_path)
    reg.register("a", logreg, metadata={"feature_plan_version": 3})
    reg.register("b", logreg, metadata={"feature_plan_version": "3"})
    assert reg.get_version("a", 1).feature_plan_version == 3
    assert reg.get_version("b", 1).feature_plan_version == "3"
    assert reg.list_models() == ["a", "b"] and reg.verify()["ok"]


@pytest.mark.slow
def test_postgres_login_failures_are_one_line_without_the_password(tmp_path, pg_server, pg):
    with pytest.raises(RegistryError, match="password authentication failed") as err:
        Registry(tmp_path, url=pg.url, password="wrong-" + pg_server.password)
    assert pg_server.password not in str(err.value) and "\n" not in str(err.value)
    down = f"postgresql://mlops@127.0.0.1:{_closed_port()}/x"
    with pytest.raises(RegistryError, match="cannot connect to the registry database") as err:
        Registry(tmp_path, url=down, password=pg_server.password)
    assert err.value.key == "registry.url"


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_postgres_a_killed_server_connection_is_reopened(tmp_path, logreg, make_pg, pg, pg_server):
    reg = make_pg(tmp_path)
    reg.register("fraud", logreg, metadata={}, actor="bob")
    with pg_server.connect(pg.url.rsplit("/", 1)[1]) as admin:  # e.g. a server restart or a failover
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE application_name = 'mlops-registry' AND pid <> pg_backend_pid()")
    assert reg.list_versions("fraud")[0].version == 1
    assert reg.register("fraud", logreg, metadata={}, actor="bob").version == 2
