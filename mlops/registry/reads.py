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
from mlops.registry import artifacts, chain, integrity, migrations, queries, signing, store
from mlops.registry.artifact_store import relative
from mlops.registry.lineage import ModelVersion


def _row_path(sha256: str, location: Path | str) -> str:
    """The recorded path of a content-addressed file, from its sha256 and location."""
    return relative(sha256, Path(str(location)).suffix)


class RegistryReads:
    """Queries over ``self.database`` and ``self.artifacts`` (set by the Registry constructor)."""

    database: Any
    artifacts: Any
    home: Path
    approvers: dict[str, str]

    @contextmanager
    def _read(self) -> Iterator[Any]:
        # One read transaction = one consistent snapshot across several queries.
        with self.database.read() as conn:
            yield conn

    def get_version(self, name: str, version_or_alias: int | str) -> ModelVersion:
        """A version by number, ``"latest"`` or alias; NotFoundError lists what exists."""
        with self._read() as conn:
            return queries.get(conn, name, queries.resolve(conn, name, version_or_alias), self.artifacts)

    def list_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Versions of one model (or of all models), ordered by name then version."""
        with self._read() as conn:
            if name is not None:
                queries.require_model(conn, name)
            sql, args = "SELECT * FROM versions", ()
            if name is not None:
                sql, args = sql + " WHERE name = ?", (name,)
            rows = conn.execute(sql + " ORDER BY name, version", args)
            return [queries.row_to_version(r, self.artifacts) for r in rows]

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
        data = self.artifacts.read(_row_path(mv.artifact_sha256, mv.artifact_path),
                                   expected_sha256=mv.artifact_sha256, what=what)
        return artifacts.load_trusted(data, trusted=trusted, what=what), mv

    def reference_path(self, name: str, version_or_alias: int | str) -> Path:
        """Local path of a version's reference-statistics file, after checking its sha256
        (an S3 store downloads it into ``<paths.home>/registry/cache`` first)."""
        mv = self.get_version(name, version_or_alias)
        if mv.reference_path is None or mv.reference_sha256 is None:
            raise NotFoundError(f"model '{name}' version {mv.version} was registered without a reference file",
                                fix="register the model with reference_file=... to enable monitoring")
        what = f"reference file of model '{name}' version {mv.version}"
        return self.artifacts.local_path(_row_path(mv.reference_sha256, mv.reference_path),
                                         expected_sha256=mv.reference_sha256, what=what)

    # ------------------------------------------------------------ maintenance
    def verify(self, expect_head: str | None = None) -> dict[str, Any]:
        """Full verification: chain links, triggers, versions/aliases/approvals against the
        chain, signatures, artefact sha256s, interrupted writes. ``expect_head`` (a head
        printed by an earlier verify) must still be in the intact chain.

        Returns ``{"ok", "head", "events", "versions_checked", "database", "first_broken_link",
        "problems": [{kind, problem, ...}], "notes": [{kind: "interrupted_write", note, file}]}``;
        ``ok`` is False only for problems (an edited or missing recorded fact).
        """
        with self._read() as conn:
            return integrity.verify(conn, self.artifacts, declared=self.approvers, expect_head=expect_head)

    def head(self) -> str:
        """Hash of the newest chain event."""
        with self._read() as conn:
            return chain.head(conn)

    def gc_orphans(self, *, min_age_seconds: float = 3600.0, dry_run: bool = False) -> list[Path | str]:
        """Delete what killed registrations left in the artefact store: artefacts no version
        references and partial temp files.

        Only files older than ``min_age_seconds`` go: a registration in progress (on any
        machine sharing the store) has written its file but not yet its row. Returns the
        locations removed (or that would be).
        """
        return integrity.remove_interrupted(self.artifacts, self._used_files, min_age_seconds=min_age_seconds,
                                            dry_run=dry_run)

    def _used_files(self) -> set[str]:
        with self._read() as conn:
            return integrity.used_files(conn)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe dump of everything (models, versions, approvals, aliases, history, audit, policies)."""
        with self._read() as conn:
            models = []
            for name in queries.model_names(conn):
                versions = []
                for row in conn.execute("SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)):
                    entry = queries.row_to_version(row, self.artifacts).to_dict()
                    entry["approvals"] = [{k: a[k] for k in ("approver", "alias", "ts", "comment", "event")}
                                          for a in queries.approvals(conn, name, entry["version"])]
                    versions.append(entry)
                models.append({"name": name, "versions": versions, "aliases": queries.alias_map(conn, name),
                               "alias_history": queries.history(conn, name)})
            audit = queries.audit_rows(conn)
        return {"schema_version": migrations.SCHEMA_VERSION, "generated_at": store.utc_now(), "home": str(self.home),
                "database": self.database.display, "artifacts": self.artifacts.display,
                "policies": self.policy.to_dict(),
                "approvers": {n: signing.fingerprint(k) for n, k in sorted(self.approvers.items())},
                "models": models, "audit": audit, "head": audit[-1]["hash"] if audit else chain.GENESIS}
