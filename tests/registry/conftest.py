"""Shared fixtures for registry tests: tiny real scikit-learn models, and the backends."""
from __future__ import annotations

import importlib.util
import itertools
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from pg_server import PostgresServer, Unavailable
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mlops.registry import Registry, migrations
from mlops.registry.database import open_database


@pytest.fixture(scope="session")
def tiny_xy():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(80, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    return x, y


@pytest.fixture(scope="session")
def logreg(tiny_xy):
    x, y = tiny_xy
    return LogisticRegression().fit(x, y)


@pytest.fixture(scope="session")
def tabular():
    rng = np.random.default_rng(11)
    n = 120
    amount = rng.gamma(2.0, 50.0, n)
    amount[::9] = np.nan
    frame = pl.DataFrame({
        "amount": amount,
        "age": rng.integers(18, 80, n).astype(float),
        "channel": rng.choice(["web", "app", "store"], n),
    })
    y = ((np.nan_to_num(amount) > 100) | (frame["channel"].to_numpy() == "app")).astype(int)
    return frame, y


@pytest.fixture(scope="session")
def hgb_pipeline(tabular):
    frame, y = tabular
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["amount", "age"]),
        ("cat", OneHotEncoder(handle_unknown="ignore"), ["channel"]),
    ])
    return Pipeline([("pre", pre), ("clf", HistGradientBoostingClassifier(max_iter=8, random_state=0))]).fit(frame, y)


@pytest.fixture(autouse=True)
def _outside_any_checkout(tmp_path, monkeypatch):
    # register() records the git commit of the working directory; run in a temp dir so
    # tests never depend on (or touch) the project checkout.
    monkeypatch.chdir(tmp_path)


# --------------------------------------------------------------------------- backends
# Every registry test that touches the index runs on the embedded SQLite file and on a
# real PostgreSQL server (tests/pg_server.py: initdb + pg_ctl in a temp dir, 127.0.0.1).
# The PostgreSQL runs are `slow` (they start a server) and skip with one line where the
# server or psycopg is missing.

_DATABASES = itertools.count(1)
WORKER = Path(__file__).resolve().with_name("registry_worker.py")


@pytest.fixture
def run_worker():
    """``run_worker(mode, *args, cwd=, backend=)``: registry_worker.py in a subprocess (it
    forks the writers); its JSON result. ``backend`` (url, password) points it at PostgreSQL."""
    def run(*args, cwd, backend=None) -> dict:
        # Single-threaded BLAS: children are forked from a process that imported numpy.
        env = dict(os.environ, PYTHONPATH=str(WORKER.parents[2]), OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
        if backend is not None and backend.url is not None:
            env.update(REGISTRY_URL=backend.url, PGPASSWORD=backend.password)
        done = subprocess.run([sys.executable, str(WORKER), *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])
    return run


@pytest.fixture(scope="session")
def fitted():
    """``fitted(seed)``: the model the worker registers for ``seed`` (to compare coefficients)."""
    spec = importlib.util.spec_from_file_location("registry_worker_recipe", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fitted


@pytest.fixture(scope="session")
def pg_server():
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg is not installed (pip install -e '.[postgres]'): PostgreSQL registry tests skipped")
    try:
        server = PostgresServer.start()
    except Unavailable as exc:
        pytest.skip(f"cannot start PostgreSQL here ({str(exc)[:200]}): PostgreSQL registry tests skipped")
    yield server
    server.stop()


class Backend:
    """What a test needs to know about the index it runs on."""

    def __init__(self, dialect: str, url: str | None = None, password: str | None = None):
        self.dialect, self.url, self.password = dialect, url, password

    @property
    def kwargs(self) -> dict:
        """Registry(...) keyword arguments."""
        return {} if self.url is None else {"url": self.url, "password": self.password}

    @property
    def overrides(self) -> list[str]:
        """CLI overrides (the password goes by PGPASSWORD, see :meth:`env`)."""
        return [] if self.url is None else [f"registry.url={self.url}"]

    def env(self, monkeypatch) -> None:
        if self.password is not None:
            monkeypatch.setenv("PGPASSWORD", self.password)

    @property
    def append_only_error(self) -> type[BaseException]:
        if self.dialect == "sqlite":
            return sqlite3.IntegrityError
        import psycopg
        return psycopg.errors.RaiseException

    def drop_trigger(self, name: str) -> str:
        table = name.split("_no_")[0]
        return f"DROP TRIGGER {name}" + ("" if self.dialect == "sqlite" else f" ON {table}")

    def create_trigger(self, name: str) -> str:
        return (migrations.SQLITE_TRIGGERS if self.dialect == "sqlite" else migrations.PG_TRIGGERS)[name]

    @property
    def sequence_table(self) -> str:
        return "sqlite_sequence" if self.dialect == "sqlite" else "audit_sequence"

    @staticmethod
    def sql(reg, *statements: str) -> None:
        """Run statements directly on the index (as someone with write access would)."""
        with reg.database.write() as conn:
            for statement in statements:
                conn.execute(statement)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def backend(request, tmp_path) -> Backend:
    """The embedded SQLite index, or a fresh migrated PostgreSQL database."""
    if request.param == "sqlite":
        return Backend("sqlite")
    return _fresh_postgres(request.getfixturevalue("pg_server"), tmp_path)


@pytest.fixture
def pg_backend(pg_server, tmp_path) -> Backend:
    """A fresh migrated PostgreSQL database alone (for PostgreSQL-only tests, marked slow)."""
    return _fresh_postgres(pg_server, tmp_path)


def _fresh_postgres(server, tmp_path) -> Backend:
    url = server.create_database(f"reg{next(_DATABASES)}_{os.getpid()}")
    migrations.migrate(open_database(url, home=tmp_path, password=server.password))
    return Backend("postgresql", url, server.password)


@pytest.fixture
def make_registry(backend):
    """``make_registry(home, **kwargs)``: a Registry on the test's backend."""
    return lambda home, *args, **kwargs: Registry(home, *args, **backend.kwargs, **kwargs)
