"""Where artefact files live: a local directory (default), a shared one, or S3.

``registry.artifacts`` chooses it:

- null: ``<paths.home>/registry/artifacts``, private (0700/0600) like all of the home;
- a path (relative: under ``paths.home``): a local directory, private;
- ``file:///mnt/team/artifacts``: a shared directory (NFS, SMB, ...) for a team: new
  directories 2770 and files 0640, so members of its group read and register;
- ``s3://bucket/prefix``: S3 or an S3-compatible server through boto3 (the ``s3``
  extra), with ``registry.s3.endpoint_url``/``region``; credentials come from boto3's
  usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``~/.aws``, a role).

Every store is content-addressed: a file's key is ``<sha256[:2]>/<sha256><suffix>``
and a version row records ``artifacts/<key>``, the same text whatever the store and
wherever it is mounted. Writes are atomic: a directory store writes a temp file,
fsyncs it and renames it into place (two machines writing the same content both end
with the same file; a partial write is only ever a hidden ``.*.tmp``); an S3 PUT is
visible whole or not at all.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mlops.errors import ArtifactIntegrityError, ConfigError, DataError
from mlops.registry import artifacts

PREFIX = "artifacts/"
_REL = re.compile(r"^artifacts/([0-9a-f]{2})/([0-9a-f]{64})(\.[A-Za-z0-9]{1,12})$")


def relative(sha256: str, suffix: str) -> str:
    """What a version row records for content ``sha256``: ``artifacts/ab/ab...<suffix>``."""
    return f"{PREFIX}{sha256[:2]}/{sha256}{suffix}"


def check_relative(rel: str, what: str) -> str:
    """``rel`` itself when it is a content address (never a path that leaves the store)."""
    found = _REL.match(rel or "")
    if found is None or found.group(1) != found.group(2)[:2]:
        raise ArtifactIntegrityError(f"{what}: recorded artefact path {rel!r} is not a content address",
                                     fix="run action=verify: the version row was edited")
    return rel


@dataclass(frozen=True)
class StoredFile:
    """A file found in a store: its row path (``rel``), where it is, its age, and
    whether it is a partial write (a temp file nobody can load)."""

    rel: str
    location: Path | str
    age_seconds: float
    partial: bool


class DirectoryArtifacts:
    """Artefacts in a directory: private (the default, under ``paths.home``) or shared."""

    def __init__(self, directory: Path, *, shared: bool = False):
        self.directory = Path(directory)
        self.shared = shared
        self.display = f"file://{self.directory}" if shared else str(self.directory)

    def locate(self, rel: str) -> Path:
        return self.directory / rel[len(PREFIX):]

    def put(self, sha256: str, suffix: str, data: bytes) -> str:
        """Store ``data`` (whose sha256 is ``sha256``) atomically; returns its row path."""
        artifacts.write_atomic(self.directory, sha256, suffix, data, shared=self.shared)
        return relative(sha256, suffix)

    def exists(self, rel: str) -> bool:
        return self.locate(rel).is_file()

    def read(self, rel: str, *, expected_sha256: str, what: str) -> bytes:
        """The file's bytes, checked against ``expected_sha256``."""
        return artifacts.read_verified(self.locate(check_relative(rel, what)), expected_sha256=expected_sha256,
                                       what=what)

    def local_path(self, rel: str, *, expected_sha256: str, what: str) -> Path:
        """A local path to the verified file (the file itself)."""
        self.read(rel, expected_sha256=expected_sha256, what=what)
        return self.locate(rel)

    def files(self) -> list[StoredFile]:
        """Every file in the store, content files and partial writes."""
        if not self.directory.exists():
            return []
        now, out = time.time(), []
        for path in sorted(self.directory.rglob("*")):
            try:
                if not path.is_file():
                    continue
                age = now - path.stat().st_mtime
            except FileNotFoundError:  # renamed or removed meanwhile
                continue
            rel = PREFIX + path.relative_to(self.directory).as_posix()
            out.append(StoredFile(rel, path, age, partial=_REL.match(rel) is None))
        return out

    def hide(self, found: StoredFile) -> Any:
        """Step 1 of removal: rename out of sight (a reader or writer now misses the file);
        returns a handle for :meth:`restore` / :meth:`drop`. None when it is already gone."""
        path = Path(found.location)
        hidden = path.with_name(f".{path.name}.gc{artifacts.PARTIAL_SUFFIX}")
        try:
            path.rename(hidden)
        except FileNotFoundError:
            return None
        return (hidden, path)

    @staticmethod
    def restore(handle: Any) -> None:
        """Undo :meth:`hide` (the file turned out to be referenced after all)."""
        hidden, path = handle
        hidden.replace(path)

    @staticmethod
    def drop(handle: Any) -> None:
        hidden, _ = handle
        hidden.unlink(missing_ok=True)


def _read_reference(source: Path) -> tuple[bytes, str]:
    if not source.is_file():
        raise DataError(f"reference file {source} does not exist or is not a file", key="reference_file",
                        fix="pass the path of the reference statistics written at training time")
    suffix = source.suffix if re.fullmatch(r"\.[A-Za-z0-9]{1,12}", source.suffix) else ".bin"
    return source.read_bytes(), suffix


def store_files(files: Any, model: Any, reference_file: Path | str | None) -> tuple[dict[str, Any], list]:
    """Write a model (and its reference file) into the store ``files``; returns their
    ``versions`` columns and what was written as ``[(sha256, suffix, bytes)]``. Runs
    before the version row exists, so a crash leaves at worst an interrupted write."""
    reference = None if reference_file is None else _read_reference(Path(reference_file))
    data = artifacts.dump_model(model)
    sha = artifacts.sha256_bytes(data)
    written = [(sha, artifacts.MODEL_SUFFIX, data)]
    columns = {"artifact_sha256": sha, "artifact_path": files.put(sha, artifacts.MODEL_SUFFIX, data),
               "artifact_size": len(data), "reference_sha256": None, "reference_path": None}
    if reference is not None:
        ref_bytes, suffix = reference
        ref_sha = artifacts.sha256_bytes(ref_bytes)
        columns.update(reference_sha256=ref_sha, reference_path=files.put(ref_sha, suffix, ref_bytes))
        written.append((ref_sha, suffix, ref_bytes))
    return columns, written


def open_artifacts(spec: Any, *, home: Path, s3: dict | None = None,
                   key: str = "registry.artifacts") -> Any:
    """The artefact store ``registry.artifacts`` names (see the module docstring)."""
    default = Path(home) / "registry" / "artifacts"
    if spec is None or (isinstance(spec, str) and not spec.strip()):
        return DirectoryArtifacts(default)
    if not isinstance(spec, (str, Path)):
        raise ConfigError(f"must be a path, file:///... or s3://bucket/prefix; got {spec!r} instead", key=key)
    text = str(spec).strip()
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "":
        path = Path(text).expanduser()
        return DirectoryArtifacts(path if path.is_absolute() else Path(home) / path)
    parts = urlsplit(text)
    if scheme == "file":
        if parts.netloc not in ("", "localhost") or not parts.path.startswith("/"):
            raise ConfigError(f"a shared directory is file:///absolute/path; got {text!r} instead", key=key,
                              fix="mount the share and give its local path, e.g. file:///mnt/team/artifacts")
        return DirectoryArtifacts(Path(parts.path), shared=True)
    if scheme == "s3":
        from mlops.registry.s3_store import S3Artifacts  # boto3 is the optional `s3` extra
        return S3Artifacts(parts.netloc, parts.path.strip("/"), cache=default.parent / "cache",
                           settings=s3 or {}, key=key)
    raise ConfigError(f"unknown artefact store scheme {scheme!r} in {text!r}; valid: a path, file:///..., "
                      "s3://bucket/prefix", key=key)
