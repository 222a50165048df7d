"""Where the registry lives and who may approve: ``conf/registry/*.yaml`` (the config schema).

The settings open the registry themselves (:meth:`RegistrySettings.open`): the database
and artefact store they name, the YAML-declared gate policies and the approvers' public
keys (read from files where declared so), the PostgreSQL password from its file.

Example:
    >>> reg = RegistrySettings(policies={"production": [{"metric": "roc_auc", "min": 0.7}]}).open(
    ...     tmp_path)  # doctest: +SKIP
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from mlops.constraints import Constrained, Interval
from mlops.errors import ConfigError
from mlops.registry.approvals import check_identity
from mlops.registry.artifacts import DEFAULT_TRUSTED_TYPES
from mlops.registry.database import open_database, read_password_file

if TYPE_CHECKING:  # the registry loads when opened: the config schema imports these settings
    from mlops.registry.registry import Registry

KEY = "registry"


@dataclass
class S3Settings:
    """``registry.s3``: where an ``s3://`` artefact store is (credentials: boto3's usual chain)."""

    endpoint_url: Optional[str] = None    # null = AWS; e.g. https://minio.internal:9000
    region: Optional[str] = None


@dataclass
class RegistrySettings(Constrained):
    """``conf/registry/*.yaml``: where the registry lives, promotion gates per alias and the
    CLI's targets."""

    url: Optional[str] = None             # null = <paths.home>/registry/registry.db (SQLite); a path,
                                          # sqlite:///..., or postgresql://user@host:port/db (no password)
    password_file: Optional[str] = None   # PostgreSQL password (first line, 0600); else PGPASSWORD, ~/.pgpass
    artifacts: Optional[str] = None       # null = <paths.home>/registry/artifacts; a path, file:///..., s3://...
    s3: S3Settings = field(default_factory=S3Settings)

    model_name: Optional[str] = None      # null = model.name
    version: Optional[int] = None         # promote/approve target
    alias: str = "production"
    approver: Optional[str] = None
    actor: Optional[str] = None
    comment: Optional[str] = None
    policies: dict[str, list[Any]] = field(default_factory=dict)
    trusted_types: list[str] = field(default_factory=list)
    # name -> {public_key: "ed25519:..."} or {public_key_file: <path, relative = under paths.home>}
    approvers: dict[str, Any] = field(default_factory=dict)
    key_file: Optional[str] = None        # approve/keygen: private key; null = <home>/keys/<approver>.key
    expect_head: Optional[str] = None     # verify: a chain head printed earlier must still be in the chain
    gc_min_age_seconds: float = 600.0     # gc: younger interrupted writes may be registrations in progress

    CONSTRAINTS: ClassVar[dict] = {"gc_min_age_seconds": [Interval(float, 0, None)]}

    def open(self, home: Path, *, counts_approvals: bool = False) -> Registry:
        """The registry ``url`` / ``artifacts`` name (default: under ``home``) with the gate
        policies and approvers; ``counts_approvals``: a missing public key file is an
        error (actions that count or check approvals), else that approver is left out."""
        from mlops.registry.registry import Registry
        return Registry(home, policies=self.policies,
                        approvers=self.approver_keys(home, required=counts_approvals),
                        url=self.url, artifacts=self.artifacts, password=self.password(home),
                        s3={"endpoint_url": self.s3.endpoint_url, "region": self.s3.region})

    def open_index(self, home: Path) -> Any:
        """The registry's database alone (``action=migrate`` runs before a Registry can open)."""
        return open_database(self.url, home=home, password=self.password(home))

    def password(self, home: Path) -> str | None:
        """The PostgreSQL password from ``password_file`` (relative: under ``home``); None
        lets libpq use PGPASSWORD or ~/.pgpass. Never logged, reported or recorded."""
        if not self.password_file:
            return None
        path = Path(self.password_file).expanduser()
        return read_password_file(path if path.is_absolute() else home / path)

    def approver_keys(self, home: Path, *, required: bool) -> dict[str, str]:
        """``approvers`` as ``{name: "ed25519:..."}``; each entry is a key text or
        ``{public_key: ...}`` or ``{public_key_file: <path>}`` (relative paths: under ``home``)."""
        out = {}
        for name, spec in (self.approvers or {}).items():
            key = f"{KEY}.approvers.{name}"
            check_identity(name, key=key)
            if isinstance(spec, str):
                spec = {"public_key": spec}
            if not isinstance(spec, dict) or len(spec) != 1 or \
                    not set(spec) <= {"public_key", "public_key_file"}:
                raise ConfigError(f"must be {{public_key: 'ed25519:...'}} or {{public_key_file: "
                                  f"<path>}}; got {spec!r} instead", key=key,
                                  fix="paste the line printed by action=keygen, or point at the "
                                      ".pub file")
            if "public_key" in spec:
                out[name] = spec["public_key"]
                continue
            path = Path(str(spec["public_key_file"])).expanduser()
            path = path if path.is_absolute() else home / path
            if not path.is_file():
                if not required:
                    continue  # training or serving never counts approvals: a key not made yet is fine
                raise ConfigError(f"public key file {path} does not exist",
                                  key=f"{key}.public_key_file",
                                  fix=f"run `python run.py action=keygen registry.approver={name}` "
                                      "or fix the path")
            out[name] = path.read_text().strip()
        return out

    def approver_name(self, action: str) -> str:
        """``approver``, checked: the approver that ``action`` (approve, keygen) acts for."""
        if not self.approver:
            raise ConfigError(f"action={action} needs an approver", key=f"{KEY}.approver",
                              fix="pass registry.approver=<name> (a declared approver, not the "
                                  "trainer)")
        return check_identity(self.approver, key=f"{KEY}.approver")

    def key_path(self, home: Path, approver: str) -> Path:
        """``key_file``, or ``<home>/keys/<approver>.key``."""
        return Path(self.key_file).expanduser() if self.key_file else \
            home / "keys" / f"{approver}.key"

    def all_trusted_types(self) -> list[str]:
        """The types a registry load trusts: the defaults plus ``trusted_types``."""
        return [*DEFAULT_TRUSTED_TYPES, *self.trusted_types]

    def target_version(self, action: str) -> int:
        """``version``: the version ``action`` (promote, approve) acts on."""
        if self.version is None:
            raise ConfigError(f"action={action} needs a version", key=f"{KEY}.version",
                              fix="pass registry.version=<n> (see action=registry for the list)")
        return self.version
