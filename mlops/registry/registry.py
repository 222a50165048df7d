"""The Registry facade: register, approve, promote, rollback, load, query, verify.

    >>> reg = Registry(tmp_path, policies={"production": [{"metric": "roc_auc", "min": 0.7}]})
    >>> mv = reg.register("fraud", model, metadata={"metrics": {"roc_auc": 0.81}})
    >>> reg.promote("fraud", mv.version, "production").version
    1
    >>> model, mv = reg.load_model("fraud", "production", trusted=DEFAULT_TRUSTED_TYPES)

Layout under ``home``: ``registry/registry.db`` (SQLite, WAL) and
``registry/artifacts/<sha[:2]>/<sha>.skops`` (+ reference files, same scheme).
"""
from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError, DataError, GateFailedError, NotFoundError, RegistryError
from mlops.registry import artifacts, integrity, queries, store
from mlops.registry.gates import Gate, GatePolicy, GateResult, evaluate_gates
from mlops.registry.lineage import ModelVersion, git_commit, normalize_metadata


def _current_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return os.environ.get("USER") or "unknown"


def _actor(actor: str | None, key: str = "actor") -> str:
    if actor is None:
        return _current_user()
    if not isinstance(actor, str) or not actor.strip():
        raise ConfigError(f"must be a non-empty string; got {actor!r} instead", key=key)
    return actor.strip()


class Registry:
    """Model registry rooted at ``home`` with promotion ``policies`` (alias -> gates)."""

    def __init__(
        self,
        home: Path | str,
        policies: Mapping[str, Sequence[Gate | Mapping[str, Any]]] | GatePolicy | None = None,
    ):
        self.home = Path(home)
        self.root = self.home / "registry"
        self.db_path = self.root / "registry.db"
        self.artifacts_dir = self.root / "artifacts"
        self.policy = GatePolicy.from_dict(policies, key="policies")
        # Test hook: called after the artefact file is durable and before the DB insert.
        self._after_artifact_write: Callable[[], None] | None = None
        store.initialize(self.db_path)

    def __repr__(self) -> str:
        return f"Registry(home={str(self.home)!r})"

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

    @contextmanager
    def _write(self) -> Iterator[Any]:
        conn = store.connect(self.db_path)
        try:
            with store.transaction(conn):
                yield conn
        finally:
            conn.close()

    # ------------------------------------------------------------------ writes
    def register(
        self,
        name: str,
        model: Any,
        *,
        metadata: dict[str, Any],
        reference_file: Path | str | None = None,
        parent: int | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Store ``model`` as the next version of ``name`` and return it.

        ``metadata`` keys: see ``mlops.registry.lineage.METADATA_KEYS`` (metrics, fairness,
        config, hyperparameters, training_data_hash, feature_plan_hash, ...).
        ``reference_file`` (monitoring reference statistics) is stored content-addressed.
        The artefact is written and fsynced before the version row exists, so a crash
        leaves at worst an unreferenced file.
        """
        queries.check_model_name(name)
        meta = normalize_metadata(metadata)
        actor = _actor(actor)
        who = meta.pop("who", None) or actor
        code_version = meta.pop("code_version") if "code_version" in meta else git_commit()
        if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int) or parent < 1):
            raise ConfigError(f"must be a version number >= 1 or None; got {parent!r} instead", key="parent")
        if parent is not None:
            with self._read() as conn:
                queries.resolve(conn, name, parent)  # fail before writing anything

        reference = None if reference_file is None else self._read_reference(Path(reference_file))
        data = artifacts.dump_model(model)
        sha = artifacts.sha256_bytes(data)
        path = artifacts.write_atomic(self.artifacts_dir, sha, artifacts.MODEL_SUFFIX, data)
        ref_sha, ref_rel = None, None
        if reference is not None:
            ref_bytes, suffix = reference
            ref_sha = artifacts.sha256_bytes(ref_bytes)
            ref_path = artifacts.write_atomic(self.artifacts_dir, ref_sha, suffix, ref_bytes)
            ref_rel = ref_path.relative_to(self.root).as_posix()
        if self._after_artifact_write is not None:
            self._after_artifact_write()

        cls = type(model)
        row = {
            "name": name, "who": who, "code_version": code_version, "parent": parent,
            "artifact_sha256": sha, "artifact_path": path.relative_to(self.root).as_posix(),
            "artifact_size": len(data), "model_class": f"{cls.__module__}.{cls.__qualname__}",
            "reference_sha256": ref_sha, "reference_path": ref_rel,
            "training_data_hash": meta.get("training_data_hash"),
            "feature_plan_hash": meta.get("feature_plan_hash"),
            "feature_plan_name": meta.get("feature_plan_name"),
            "feature_plan_version": meta.get("feature_plan_version"),
            "description": meta.get("description"),
            **{k: store.dumps(meta.get(k, {})) for k in ("config", "hyperparameters", "metrics", "fairness", "tags")},
        }
        with self._write() as conn:
            if parent is not None:
                queries.resolve(conn, name, parent)
            (version,) = conn.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?", (name,)
            ).fetchone()
            row.update(version=version, created_at=store.utc_now())
            cols = ", ".join(row)
            conn.execute(f"INSERT INTO versions ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
            queries.write_audit(
                conn, ts=row["created_at"], model=name, version=version, action="register", actor=actor,
                details={"artifact_sha256": sha, "who": who, "parent": parent, "code_version": code_version,
                         "reference_sha256": ref_sha, "model_class": row["model_class"]},
            )
            return queries.get(conn, name, version, self.root)

    @staticmethod
    def _read_reference(source: Path) -> tuple[bytes, str]:
        if not source.is_file():
            raise DataError(f"reference file {source} does not exist or is not a file", key="reference_file",
                            fix="pass the path of the reference statistics written at training time")
        suffix = source.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,12}", source.suffix) else ".bin"
        return source.read_bytes(), suffix

    def approve(self, name: str, version: int | str, approver: str, comment: str | None = None) -> dict[str, Any]:
        """Record ``approver``'s approval of a version (idempotent per approver).

        The version's trainer (``who``) cannot approve it: RegistryError, audited as ``refused``.
        """
        approver = _actor(approver, key="approver")
        if comment is not None and not isinstance(comment, str):
            raise ConfigError(f"must be a string or None; got {comment!r} instead", key="comment")
        refusal = None
        with self._write() as conn:
            v = queries.resolve(conn, name, version)
            trainer = queries.get(conn, name, v, self.root).who
            ts = store.utc_now()
            if approver == trainer:
                reason = f"'{approver}' trained version {v} and cannot approve it"
                queries.write_audit(conn, ts=ts, model=name, version=v, action="refused", actor=approver,
                                    details={"operation": "approve", "reason": reason})
                refusal = RegistryError(f"model '{name}': {reason}",
                                        fix="ask someone other than the trainer to approve")
            else:
                found = conn.execute("SELECT * FROM approvals WHERE name = ? AND version = ? AND approver = ?",
                                     (name, v, approver)).fetchone()
                if found is not None:
                    return {"name": name, "version": v, **{k: found[k] for k in ("approver", "ts", "comment")}}
                conn.execute("INSERT INTO approvals (name, version, approver, ts, comment) VALUES (?, ?, ?, ?, ?)",
                             (name, v, approver, ts, comment))
                queries.write_audit(conn, ts=ts, model=name, version=v, action="approve", actor=approver,
                                    details={"comment": comment})
        if refusal is not None:
            raise refusal  # raised after COMMIT so the refusal stays in the audit log
        return {"name": name, "version": v, "approver": approver, "ts": ts, "comment": comment}

    def check_gates(self, name: str, version: int | str, alias: str) -> list[GateResult]:
        """Dry run: what the gates of ``alias`` say about a version now (nothing is recorded)."""
        queries.check_alias_name(alias)
        with self._read() as conn:
            return self._evaluate(conn, name, queries.resolve(conn, name, version), alias)[0]

    def _evaluate(self, conn: Any, name: str, v: int, alias: str) -> tuple[list[GateResult], int | None]:
        candidate = queries.get(conn, name, v, self.root)
        current_v = queries.alias_map(conn, name).get(alias)
        current = None if current_v is None else queries.get(conn, name, current_v, self.root)
        approvers = [a["approver"] for a in queries.approvers(conn, name, v)]
        results = evaluate_gates(self.policy.for_alias(alias), candidate=candidate, current=current,
                                 approvers=approvers, alias=alias)
        return results, current_v

    def promote(self, name: str, version: int | str, alias: str, actor: str | None = None) -> ModelVersion:
        """Point ``alias`` at a version if every gate of ``alias`` passes.

        Gates are evaluated and the alias moved in one write transaction, so a concurrent
        promotion cannot slip in between. On failure a ``refused`` audit entry is written
        and GateFailedError names the failing gates (``error.results`` holds all results).
        Promoting the version the alias already points at changes nothing.
        """
        queries.check_alias_name(alias)
        actor = _actor(actor)
        refusal = None
        with self._write() as conn:
            v = queries.resolve(conn, name, version)
            results, current_v = self._evaluate(conn, name, v, alias)
            if current_v == v:
                return queries.get(conn, name, v, self.root)
            failed = [r for r in results if not r.passed]
            ts = store.utc_now()
            details = {"from": current_v, "to": v, "gates": [r.to_dict() for r in results]}
            if failed:
                details["failed_gates"] = [r.name for r in failed]
                queries.write_audit(conn, ts=ts, model=name, version=v, action="refused", alias=alias,
                                    actor=actor, details={"operation": "promote", **details})
                listing = "; ".join(f"{r.name} ({r.detail})" for r in failed)
                refusal = GateFailedError(
                    f"promotion of model '{name}' version {v} to '{alias}' refused by "
                    f"{len(failed)} gate(s): {listing}",
                    fix="improve the model, or get the approvals with Registry.approve, then promote again",
                )
                refusal.results = results
            else:
                self._move_alias(conn, name, alias, v, current_v, "promote", actor, ts)
                queries.write_audit(conn, ts=ts, model=name, version=v, action="promote", alias=alias,
                                    actor=actor, details=details)
                moved = queries.get(conn, name, v, self.root)
        if refusal is not None:
            raise refusal  # after COMMIT: the refusal stays in the audit log
        return moved

    @staticmethod
    def _move_alias(conn: Any, name: str, alias: str, to: int, previous: int | None,
                    action: str, actor: str, ts: str) -> None:
        conn.execute(
            "INSERT INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            (name, alias, to, ts),
        )
        conn.execute(
            "INSERT INTO alias_history (ts, name, alias, version, previous, action, actor) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (ts, name, alias, to, previous, action, actor),
        )

    def rollback(self, name: str, alias: str = "production", actor: str | None = None) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last move; returns that version.

        Repeated rollbacks walk further back. No earlier version -> RegistryError.
        """
        queries.check_alias_name(alias)
        actor = _actor(actor)
        with self._write() as conn:
            queries.require_model(conn, name)
            stack = queries.alias_stack(conn, name, alias)
            if not stack:
                raise NotFoundError(f"model '{name}' has no alias '{alias}' to roll back; "
                                    f"{queries.describe(conn, name)}")
            if len(stack) < 2:
                raise RegistryError(
                    f"cannot roll back alias '{alias}' of model '{name}': it points at version {stack[-1]} "
                    "and has no earlier version to go back to",
                    fix=f"promote another version to '{alias}' instead",
                )
            current, target = stack[-1], stack[-2]
            ts = store.utc_now()
            self._move_alias(conn, name, alias, target, current, "rollback", actor, ts)
            queries.write_audit(conn, ts=ts, model=name, version=target, action="rollback", alias=alias,
                                actor=actor, details={"from": current, "to": target})
            return queries.get(conn, name, target, self.root)

    def record_event(self, name: str, action: str, *, version: int | None = None, alias: str | None = None,
                     actor: str | None = None, details: dict | None = None) -> None:
        """Append one audit entry for a state change made outside the registry (breaker
        trip/reset, admin reload, ...). ``details`` must be JSON-serialisable."""
        queries.check_model_name(name)
        if alias is not None:
            queries.check_alias_name(alias)
        if details is not None and not isinstance(details, dict):
            raise ConfigError(f"must be a dict or None; got {details!r} instead", key="details")
        actor = _actor(actor)
        with self._write() as conn:
            queries.write_audit(conn, ts=store.utc_now(), model=name, version=version, action=action,
                                actor=actor, alias=alias, details=details)

    # ----------------------------------------------------------------- reads
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
        """Every move of ``alias`` (id, ts, alias, version, previous, action, actor), oldest first."""
        with self._read() as conn:
            queries.require_model(conn, name)
            return queries.history(conn, name, alias)

    def audit_log(self, name: str | None = None) -> list[dict[str, Any]]:
        """Audit entries (id, ts, model, version, action, alias, actor, details), oldest first."""
        with self._read() as conn:
            return queries.audit_rows(conn, name)

    def approvals(self, name: str, version: int | str) -> list[dict[str, Any]]:
        """Approvals of a version: ``[{approver, ts, comment}]``."""
        with self._read() as conn:
            return queries.approvers(conn, name, queries.resolve(conn, name, version))

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
    def verify(self) -> dict[str, Any]:
        """Integrity check: database, and every version's artefact/reference exists with the recorded sha.

        Returns ``{"ok", "versions_checked", "database", "problems": [{model, version, kind, file, problem}]}``.
        """
        with self._read() as conn:
            database = conn.execute("PRAGMA quick_check").fetchone()[0]
            versions = [queries.row_to_version(r, self.root) for r in conn.execute("SELECT * FROM versions")]
        return integrity.check_versions(versions, database)

    def gc_orphans(self, *, min_age_seconds: float = 3600.0, dry_run: bool = False) -> list[Path]:
        """Delete artefact files no version references (left by crashed registrations).

        Only files older than ``min_age_seconds`` go: a registration in progress has
        written its file but not yet its row. Returns the paths removed (or that would be).
        """
        with self._read() as conn:
            used = [self.root / p for (p,) in conn.execute(
                "SELECT artifact_path FROM versions UNION SELECT reference_path FROM versions "
                "WHERE reference_path IS NOT NULL")]
        return integrity.remove_orphans(self.artifacts_dir, used, min_age_seconds=min_age_seconds, dry_run=dry_run)

    def snapshot(self) -> dict[str, Any]:
        """JSON-safe dump of everything (models, versions, approvals, aliases, history, audit, policies)."""
        with self._read() as conn:
            models = []
            for name in queries.model_names(conn):
                versions = []
                for row in conn.execute("SELECT * FROM versions WHERE name = ? ORDER BY version", (name,)):
                    entry = queries.row_to_version(row, self.root).to_dict()
                    entry["approvals"] = queries.approvers(conn, name, entry["version"])
                    versions.append(entry)
                models.append({"name": name, "versions": versions, "aliases": queries.alias_map(conn, name),
                               "alias_history": queries.history(conn, name)})
            audit = queries.audit_rows(conn)
        return {"schema_version": store.SCHEMA_VERSION, "generated_at": store.utc_now(), "home": str(self.home),
                "database": str(self.db_path), "policies": self.policy.to_dict(), "models": models, "audit": audit}
