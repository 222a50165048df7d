"""The Registry facade: register, approve, promote, rollback, load, query, verify.

    >>> reg = Registry(tmp_path, policies={"production": [{"metric": "roc_auc", "min": 0.7}]})
    >>> mv = reg.register("fraud", model, metadata={"metrics": {"roc_auc": 0.81}})
    >>> reg.promote("fraud", mv.version, "production").version
    1
    >>> reg.verify()["ok"]
    True
    >>> model, mv = reg.load_model("fraud", "production", trusted=DEFAULT_TRUSTED_TYPES)

Default layout under ``home``: ``registry/registry.db`` (SQLite, WAL) and
``registry/artifacts/<sha[:2]>/<sha>.skops`` (+ reference files, same scheme). A team
points ``url`` at PostgreSQL (:mod:`mlops.registry.database`) and ``artifacts`` at a
shared directory or S3 (:mod:`mlops.registry.artifact_store`); everything below holds
on each.
Every state change is an event of the hash chain (:mod:`mlops.registry.chain`);
aliases and approvals are read from the chain, approvals count only when signed by a
declared approver's key (:mod:`mlops.registry.approvals`).
"""
from __future__ import annotations

import getpass
import os
import pwd
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlops.errors import ConfigError, GateFailedError, IntegrityError, NotFoundError, RegistryError
from mlops.registry import approvals as signed
from mlops.registry import chain, integrity, migrations, queries, signing, store
from mlops.registry.artifact_store import open_artifacts, relative, store_files
from mlops.registry.database import open_database
from mlops.registry.gates import Gate, GatePolicy, GateResult, evaluate_gates
from mlops.registry.lineage import ModelVersion, git_commit, normalize_metadata
from mlops.registry.reads import RegistryReads


def _current_user() -> str:
    """The OS account running this process, from the uid ($USER can be set to anything)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except (KeyError, OSError):  # a uid without a passwd entry (some containers)
        try:
            return getpass.getuser()
        except Exception:
            return f"uid{os.getuid()}"


def _actor(actor: str | None, key: str = "actor") -> str:
    if actor is None:
        return _current_user()
    return signed.check_identity(actor.strip() if isinstance(actor, str) else actor, key=key)


class Registry(RegistryReads):
    """Model registry rooted at ``home`` with promotion ``policies`` (alias -> gates)."""

    def __init__(
        self,
        home: Path | str,
        policies: Mapping[str, Sequence[Gate | Mapping[str, Any]]] | GatePolicy | None = None,
        approvers: Mapping[str, str] | None = None,
        *,
        url: str | None = None,
        artifacts: str | None = None,
        password: str | None = None,
        s3: Mapping[str, Any] | None = None,
    ):
        """``url``: the index (None = SQLite under ``home``; ``postgresql://user@host:port/db``,
        whose ``password`` is used for the login only, never stored or shown);
        ``artifacts``: the artefact store (None = under ``home``; a path, ``file:///...``,
        ``s3://bucket/prefix`` with ``s3`` settings). An embedded SQLite index is created
        and migrated here; a PostgreSQL one must be at the current schema (``action=migrate``).
        """
        self.home = Path(home)
        # name -> "ed25519:<base64>"; only these keys' signatures count at the gates
        self.approvers = signed.parse_approvers(approvers, key="approvers")
        self.policy = GatePolicy.from_dict(policies, key="policies")
        self.database = open_database(url, home=self.home, password=password)
        self.artifacts = open_artifacts(artifacts, home=self.home, s3=dict(s3 or {}))
        self.root = self.home / "registry"
        self.db_path = getattr(self.database, "path", None)            # SQLite only
        self.artifacts_dir = getattr(self.artifacts, "directory", None)  # directory stores only
        # Test hook: called after the artefact file is durable and before the DB insert.
        self._after_artifact_write: Callable[[], None] | None = None
        if self.database.auto_migrate:
            migrations.migrate(self.database)
        else:
            migrations.require_current(self.database)

    def __repr__(self) -> str:
        return f"Registry(home={str(self.home)!r}, database={self.database.display!r})"

    @contextmanager
    def _write(self) -> Iterator[Any]:
        with self.database.write() as conn:
            yield conn

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
        self._check_parent(name, parent)
        files, written = store_files(self.artifacts, model, reference_file)
        if self._after_artifact_write is not None:
            self._after_artifact_write()
        cls = type(model)
        row = {
            "name": name, "who": who, "code_version": code_version, "parent": parent, **files,
            "model_class": f"{cls.__module__}.{cls.__qualname__}",
            "training_data_hash": meta.get("training_data_hash"),
            "feature_plan_hash": meta.get("feature_plan_hash"),
            "feature_plan_name": meta.get("feature_plan_name"),
            "feature_plan_version": meta.get("feature_plan_version"),
            "description": meta.get("description"),
            **{k: store.dumps(meta.get(k, {})) for k in ("config", "hyperparameters", "metrics", "fairness", "tags",
                                                         "policy")},
        }
        with self._write() as conn:
            if parent is not None:  # checked again inside the write lock
                queries.resolve(conn, name, parent)
            version = self._insert_version(conn, row, actor)
            registered = queries.get(conn, name, version, self.artifacts)
        for sha, suffix, data in written:
            # a gc that judged the file unreferenced just before the row existed may have
            # removed it: write it again (see integrity.remove_interrupted)
            if not self.artifacts.exists(relative(sha, suffix)):
                self.artifacts.put(sha, suffix, data)
        return registered

    def _check_parent(self, name: str, parent: int | None) -> None:
        """``parent`` is None or an existing version of ``name``: fail before writing anything."""
        if parent is not None and (isinstance(parent, bool) or not isinstance(parent, int) or parent < 1):
            raise ConfigError(f"must be a version number >= 1 or None; got {parent!r} instead", key="parent")
        if parent is not None:
            with self._read() as conn:
                queries.resolve(conn, name, parent)

    @staticmethod
    def _insert_version(conn: Any, row: dict[str, Any], actor: str) -> int:
        """Insert ``row`` as the next version of its model and chain a ``register`` event
        carrying the stored row's hash. Returns the new version number."""
        name = row["name"]
        (version,) = conn.execute(
            "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?", (name,)
        ).fetchone()
        row.update(version=version, created_at=store.utc_now(),
                   feature_plan_version=conn.loose(row["feature_plan_version"]))
        cols = ", ".join(row)
        conn.execute(f"INSERT INTO versions ({cols}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        stored = conn.execute("SELECT * FROM versions WHERE name = ? AND version = ?", (name, version)).fetchone()
        chain.append(
            conn, ts=row["created_at"], model=name, version=version, action="register", actor=actor,
            details={"artifact_sha256": row["artifact_sha256"], "who": row["who"], "parent": row["parent"],
                     "code_version": row["code_version"], "reference_sha256": row["reference_sha256"],
                     "model_class": row["model_class"], "account": _current_user(),
                     "row_sha256": chain.row_hash(stored)},
        )
        return version

    def approve(self, name: str, version: int | str, approver: str, *, private_key: Any,
                alias: str = "production", comment: str | None = None) -> dict[str, Any]:
        """Sign and record ``approver``'s approval of a version for ``alias`` (idempotent).

        ``private_key`` (an Ed25519PrivateKey, see :mod:`mlops.registry.signing`) must be the
        one whose public key is declared for ``approver``. Refused (RegistryError, and the
        refusal is recorded): an undeclared approver, a key that is not theirs, the trainer.
        """
        approver = signed.check_identity(approver, key="approver")
        queries.check_alias_name(alias)
        if comment is not None and (not isinstance(comment, str) or any(ord(c) < 32 for c in comment)):
            raise ConfigError(f"must be a one-line string or None; got {comment!r} instead", key="comment")
        refusal = None
        with self._write() as conn:
            v = queries.resolve(conn, name, version)
            mv = queries.get(conn, name, v, self.artifacts)
            ts = store.utc_now()
            reason = self._approval_refusal(conn, mv, approver, private_key)
            if reason is not None:
                chain.append(conn, ts=ts, model=name, version=v, action="refused", alias=alias,
                             actor=_current_user(), details={"operation": "approve", "approver": approver,
                                                             "reason": reason})
                refusal = RegistryError(f"model '{name}' version {v}: {reason}", key="registry.approver",
                                        fix="approve as a declared approver other than the trainer, "
                                            "with that approver's own key file")
            else:
                done = [a for a in queries.approvals(conn, name, v) if a["approver"] == approver
                        and a["alias"] == alias]
                if done:
                    return done[0]
                public = self.approvers[approver]
                content = signed.payload(model=name, version=v, artifact_sha256=mv.artifact_sha256,
                                         alias=alias, approver=approver, ts=ts)
                signature = signing.sign(private_key, content)
                conn.execute("INSERT INTO approvals (name, version, approver, alias, ts, comment, public_key, "
                             "signature) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             (name, v, approver, alias, ts, comment, public, signature))
                chain.append(conn, ts=ts, model=name, version=v, action="approve", alias=alias, actor=approver,
                             details={"ts": ts, "comment": comment, "public_key": public, "signature": signature,
                                      "payload": content, "account": _current_user()})
                result = queries.approvals(conn, name, v)[-1]
        if refusal is not None:
            raise refusal  # raised after COMMIT so the refusal stays in the chain
        return result

    def _approval_refusal(self, conn: Any, mv: ModelVersion, approver: str, private_key: Any) -> str | None:
        if approver not in self.approvers:
            return (f"'{approver}' is not a declared approver (declared: {sorted(self.approvers)}); "
                    "a name is not an identity, a declared public key is")
        if approver in self._trainers(conn, mv):
            return f"'{approver}' trained version {mv.version} and cannot approve it"
        if not hasattr(private_key, "public_key") or not signed.key_matches(private_key, self.approvers[approver]):
            return (f"the private key given is not {approver}'s declared key "
                    f"{signing.fingerprint(self.approvers[approver])}")
        return None

    @staticmethod
    def _trainers(conn: Any, mv: ModelVersion) -> set[str]:
        regs = [e for e in chain.events(conn, mv.name, ("register",)) if e.version == mv.version]
        return {mv.who, *(e.actor for e in regs)}

    def check_gates(self, name: str, version: int | str, alias: str) -> list[GateResult]:
        """Dry run: what the gates of ``alias`` say about a version now (nothing is recorded)."""
        queries.check_alias_name(alias)
        with self._read() as conn:
            return self._evaluate(conn, name, queries.resolve(conn, name, version), alias)[0]

    def _evaluate(self, conn: Any, name: str, v: int, alias: str) -> tuple[list[GateResult], int | None]:
        candidate = queries.get(conn, name, v, self.artifacts)
        current_v = queries.alias_map(conn, name).get(alias)
        current = None if current_v is None else queries.get(conn, name, current_v, self.artifacts)
        counted = signed.count(queries.approvals(conn, name, v), declared=self.approvers, model=name, version=v,
                               artifact_sha256=candidate.artifact_sha256, alias=alias,
                               trainers=self._trainers(conn, candidate))
        results = evaluate_gates(self.policy.for_alias(alias), candidate=candidate, current=current,
                                 approvers=counted.valid, alias=alias)
        if counted.ignored:
            results = [GateResult(r.name, r.passed, f"{r.detail}; not counted: {'; '.join(counted.ignored)}")
                       if r.name.startswith("approvals") else r for r in results]
        return results, current_v

    def _unverified(self, conn: Any, name: str, v: int, alias: str, operation: str,
                    actor: str) -> IntegrityError | None:
        """Promote and rollback never move an alias onto a version that fails verification:
        the refusal is recorded and returned (raised by the caller after COMMIT)."""
        events = chain.events(conn)
        problems = integrity.check_version(conn, self.artifacts, name, v, events)
        broken = chain.first_broken_link(events)
        if broken is not None:
            problems.append({"kind": "broken_link", "problem": broken["problem"]})
        if not problems:
            return None
        listing = "; ".join(p["problem"] for p in problems)
        chain.append(conn, ts=store.utc_now(), model=name, version=v, action="refused", alias=alias, actor=actor,
                     details={"operation": operation, "reason": "verification failed", "problems": problems})
        return IntegrityError(f"{operation} of model '{name}' version {v} to '{alias}' refused: {listing}",
                             fix="run `python run.py action=verify`; restore the file or pick another version")

    def promote(self, name: str, version: int | str, alias: str, actor: str | None = None) -> ModelVersion:
        """Point ``alias`` at a version if it verifies and every gate of ``alias`` passes.

        Gates are evaluated and the alias moved in one write transaction, so a concurrent
        promotion cannot slip in between. On failure a ``refused`` event is written and
        GateFailedError names the failing gates (``error.results`` holds all results).
        Promoting the version the alias already points at changes nothing.
        """
        queries.check_alias_name(alias)
        actor = _actor(actor)
        with self._write() as conn:
            v = queries.resolve(conn, name, version)
            results, current_v = self._evaluate(conn, name, v, alias)
            if current_v == v:
                return queries.get(conn, name, v, self.artifacts)
            refusal = self._unverified(conn, name, v, alias, "promotion", actor)
            failed = [r for r in results if not r.passed]
            ts = store.utc_now()
            details = {"from": current_v, "to": v, "gates": [r.to_dict() for r in results]}
            if refusal is None and failed:
                details["failed_gates"] = [r.name for r in failed]
                chain.append(conn, ts=ts, model=name, version=v, action="refused", alias=alias,
                             actor=actor, details={"operation": "promote", **details})
                listing = "; ".join(f"{r.name} ({r.detail})" for r in failed)
                refusal = GateFailedError(
                    f"promotion of model '{name}' version {v} to '{alias}' refused by "
                    f"{len(failed)} gate(s): {listing}",
                    fix="improve the model, or get signed approvals (action=approve), then promote again",
                )
                refusal.results = results
            elif refusal is None:
                self._move_alias(conn, name, alias, v, ts)
                chain.append(conn, ts=ts, model=name, version=v, action="promote", alias=alias,
                             actor=actor, details=details)
                moved = queries.get(conn, name, v, self.artifacts)
        if refusal is not None:
            raise refusal  # after COMMIT: the refusal stays in the chain
        return moved

    @staticmethod
    def _move_alias(conn: Any, name: str, alias: str, to: int, ts: str) -> None:
        # The aliases table is an index for SQL readers; the chain event is the record.
        conn.execute(
            "INSERT INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name, alias) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at",
            (name, alias, to, ts),
        )

    def rollback(self, name: str, alias: str = "production", actor: str | None = None) -> ModelVersion:
        """Move ``alias`` back to the version it pointed at before its last move; returns that version.

        Repeated rollbacks walk further back. No earlier version -> RegistryError; a target
        that fails verification (e.g. a tampered artefact) -> IntegrityError, alias unchanged.
        """
        queries.check_alias_name(alias)
        actor = _actor(actor)
        with self._write() as conn:
            queries.require_model(conn, name)
            stack = chain.alias_state(chain.events(conn, name, chain.ALIAS_MOVES), name).get(alias, [])
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
            refusal = self._unverified(conn, name, target, alias, "rollback", actor)
            if refusal is None:
                ts = store.utc_now()
                self._move_alias(conn, name, alias, target, ts)
                chain.append(conn, ts=ts, model=name, version=target, action="rollback", alias=alias,
                             actor=actor, details={"from": current, "to": target})
                moved = queries.get(conn, name, target, self.artifacts)
        if refusal is not None:
            raise refusal
        return moved

    def record_event(self, name: str, action: str, *, version: int | None = None, alias: str | None = None,
                     actor: str | None = None, details: dict | None = None) -> None:
        """Append an event to the chain for a state change made outside the registry
        (breaker trip/reset, admin reload, ...). ``details`` must be JSON-serialisable."""
        queries.check_model_name(name)
        if alias is not None:
            queries.check_alias_name(alias)
        if details is not None and not isinstance(details, dict):
            raise ConfigError(f"must be a dict or None; got {details!r} instead", key="details")
        actor = _actor(actor)
        with self._write() as conn:
            chain.append(conn, ts=store.utc_now(), model=name, version=version, action=action,
                         alias=alias, actor=actor, details=details)
