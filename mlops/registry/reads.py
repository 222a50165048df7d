"""The read side of the :class:`~mlops.registry.registry.Registry` facade: versions,
aliases (from the chain), history, approvals, verified loads, verification, snapshot.

Kept apart from the write paths so each module stays short; every method reads one
consistent snapshot (one deferred transaction).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops.errors import NotFoundError
from mlops.registry import artifacts, chain, integrity, queries, signing, store
from mlops.registry.lineage import ModelVersion


class RegistryReads:
    """Queries over ``self.db_path`` (set by the Registry constructor)."""

    db_path: Path
    root: Path
    artifacts_dir: Path
    home: Path
    approvers: dict[str, str]

    @contextmanager
    def _read(self) -> Iterator[Any]:
        # One deferred transaction = one consistent snapshot across several queries.
        conn = store.connect(self.db_path)
        try:
            conn.execute("BEGIN")
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def get_version(self, name: str, version_or_alias: int | str) -> ModelVersion:
        """A version by number, ``"latest"`` or alias; NotFoundError lists what exists."""
        with self._read() as conn:
            return queries.get(conn, name, queries.resolve(conn, name, version_or_alias), self.root)

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Versions of one model (or of all models), ordered by name then version."""
        with self._read() as conn:
            if name is not None:
                queries.require_model(conn, name)
            sql, args = "SELECT * FROM versions", ()
            if name is not None:
                sql, args = sql + " WHERE name = ?", (name,)
            return [queries.row_to_version(r, self.root) for r in conn.execute(sql + " ORDER BY name, version", args)]

    def list_models(self) -> list[str]:
        """Names of all registered models, sorted."""
        with self._read() as conn:
            return queries.model_names(conn)

    def aliases(self, name: str) -> dict[str, int]:
        """``{alias: version}`` for a model."""
        with self._read() as conn:
            queries.require_model(conn, name)
            return queries.alias_map(conn, name)

    def alias_history(self, name: str, alias: str) -> list[dict[str, Any]]:
        """Every move of ``alias`` (event id, ts, alias, version, previous, action, actor), oldest first."""
        with self._read() as conn:
            queries.require_model(conn, name)
            return queries.history(conn, name, alias)

    def audit_log(self, name: str | None = None) -> list[dict[str, Any]]:
        """Chain events (id, ts, model, version, action, alias, actor, details, prev_hash, hash),
        oldest first."""
        with self._read() as conn:
            return queries.audit_rows(conn, name)

    def approvals(self, name: str, version: int | str) -> list[dict[str, Any]]:
        """Approvals of a version from the chain: ``[{approver, alias, ts, comment, signature, ...}]``."""
        with self._read() as conn:
            return queries.approvals(conn, name, queries.resolve(conn, name, version))

    def load_model(self, name: str, version_or_alias: int | str, trusted: Sequence[str]) -> tuple[Any, ModelVersion]:
        """Load a version's model after checking its sha256 and that every type it holds is in ``trusted``.

        Missing, tampered or untrusted artefact -> ArtifactIntegrityError (nothing is returned).
        """
        mv = self.get_version(name, version_or_alias)
        what = f"model '{name}' version {mv.version}"
        data = artifacts.read_verified(mv.artifact_path, expected_sha256=mv.artifact_sha256, what=what)
        return artifacts.load_trusted(data, trusted=trusted, what=what), mv

    def reference_path(self, name: str, version_or_alias: int | str) -> Path:
        """Path of a version's reference-statistics file, after checking its sha256."""
        mv = self.get_version(name, version_or_alias)
        if mv.reference_path is None or mv.reference_sha256 is None:
            raise NotFoundError(f"model '{name}' version {mv.version} was registered without a reference file",
                                fix="register the model with reference_file=... to enable monitoring")
        what = f"reference file of model '{name}' version {mv.version}"
        artifacts.read_verified(mv.reference_path, expected_sha256=mv.reference_sha256, what=what)
        return mv.reference_path

    # ------------------------------------------------------------ maintenance
    def verify(self, expect_head: str | None = None) -> dict[str, Any]:
        """Full verification: chain links, triggers, versions/aliases/approvals against the
        chain, signatures, artefact sha256s, orphan files. ``expect_head`` (a head printed by
        an earlier verify) must still be in the intact chain.

        Returns ``{"ok", "head", "events", "versions_checked", "database", "first_broken_link",
        "problems": [{kind, problem, ...}]}``.
        """
        with self._read() as conn:
            return integrity.verify(conn, self.root, self.artifacts_dir, declared=self.approvers,
                                    expect_head=expect_head)

    def head(self) -> str:
        """Hash of the newest chain event."""
        with self._read() as conn:
            return chain.head(conn)

    def gc_orphans(self, *, min_age_seconds: float = 3600.0, dry_run: bool = False) -> list[Path]:
        """Delete artefact files no version references (left by crashed registrations).

        Only files older than ``min_age_seconds`` go: a registration in progress has
        written its file but not yet its row. Returns the paths removed (or that would be).
        """
        with self._read() as conn:
            used = integrity.used_files(conn, self.root)
        return integrity.remove_orphans(self.artifacts_dir, used, min_age_seconds=min_age_seconds, dry_run=dry_run)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe dump of everything (models, versions, approvals, aliases, history, audit, policies)."""
        with self._read() as conn:
            models = []
            for name in queries.model_names(conn):
                versions = []
                for row in conn.execute("SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)):
                    entry = queries.row_to_version(row, self.root).to_dict()
                    entry["approvals"] = [{k: a[k] for k in ("approver", "alias", "ts", "comment", "event")}
                                          for a in queries.approvals(conn, name, entry["version"])]
                    versions.append(entry)
                models.append({"name": name, "versions": versions, "aliases": queries.alias_map(conn, name),
                               "alias_history": queries.history(conn, name)})
            audit = queries.audit_rows(conn)
        return {"schema_version": store.SCHEMA_VERSION, "generated_at": store.utc_now(), "home": str(self.home),
                "database": str(self.db_path), "policies": self.policy.to_dict(),
                "approvers": {n: signing.fingerprint(k) for n, k in sorted(self.approvers.items())},
                "models": models, "audit": audit, "head": audit[-1]["hash"] if audit else chain.GENESIS}
