"""Artefacts in S3 (or an S3-compatible server) through boto3, the ``s3`` extra.

    registry.artifacts: s3://team-models/registry      # bucket, key prefix
    registry.s3: {endpoint_url: https://minio.internal:9000, region: eu-west-1}

Objects are content-addressed (``<prefix>/<sha256[:2]>/<sha256><suffix>``) and written
with one PUT, which S3 makes visible whole or not at all, so a killed upload is never
seen. Reads check the sha256 recorded at registration; a file that must be local (the
monitoring reference) is downloaded, verified, into ``<paths.home>/registry/cache``.
Removal by ``gc`` is a DELETE after a second look at the index; unlike a directory
store there is no rename to hide a file first, so an upload of the very same bytes
racing that DELETE can lose its object (``verify`` then names the version, and
registering the model again restores it).

Tested against moto's S3 server (``moto[server]``) where it is installed; no real AWS.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from mlops.errors import ArtifactIntegrityError, ConfigError, RegistryError
from mlops.home import private_dir
from mlops.registry import artifacts
from mlops.registry.artifact_store import PREFIX, StoredFile, check_relative

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ConfigError("registry.artifacts names an S3 bucket but boto3 is not installed",
                      key="registry.artifacts", fix='pip install "mlops[s3]"') from exc

_SETTINGS = ("endpoint_url", "region")


def _missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


class S3Artifacts:
    """Artefacts under ``s3://bucket/prefix``."""

    shared = True

    def __init__(self, bucket: str, prefix: str, *, cache: Path, settings: dict, key: str):
        if not bucket:
            raise ConfigError("an S3 store is s3://bucket/prefix; the bucket is missing", key=key)
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise ConfigError(f"unknown S3 settings {unknown}; valid: {list(_SETTINGS)}", key="registry.s3")
        self.bucket, self.prefix, self.cache = bucket, (prefix + "/") if prefix else "", Path(cache)
        self.display = f"s3://{bucket}/{self.prefix}"
        self.client = boto3.client("s3", endpoint_url=settings.get("endpoint_url") or None,
                                   region_name=settings.get("region") or None,
                                   config=Config(retries={"max_attempts": 5, "mode": "standard"}))

    def _key(self, rel: str) -> str:
        return self.prefix + rel[len(PREFIX):]

    def locate(self, rel: str) -> str:
        return f"s3://{self.bucket}/{self._key(rel)}"

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except (BotoCoreError, ClientError) as exc:
            raise self._unreachable(exc, f"{what} in {self.display} failed") from exc

    def put(self, sha256: str, suffix: str, data: bytes) -> str:
        """Upload ``data`` under its content address (one PUT); returns its row path."""
        rel = f"{PREFIX}{sha256[:2]}/{sha256}{suffix}"
        self._call(f"upload of {rel}", self.client.put_object, Key=self._key(rel), Body=data,
                   Metadata={"sha256": sha256})
        return rel

    def exists(self, rel: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(rel))
            return True
        except ClientError as exc:
            if _missing(exc):
                return False
            raise self._unreachable(exc, f"cannot look up {self.locate(rel)}") from exc
        except BotoCoreError as exc:
            raise self._unreachable(exc, f"cannot look up {self.locate(rel)}") from exc

    def _unreachable(self, exc: BaseException, what: str) -> RegistryError:
        """The store cannot answer: a one-line error (exit 2), never a verdict on the file."""
        return RegistryError(f"{what}: {exc}", key="registry.artifacts",
                             fix="check the bucket, registry.s3.endpoint_url and the AWS credentials")

    def read(self, rel: str, *, expected_sha256: str, what: str) -> bytes:
        """The object's bytes, checked against ``expected_sha256``."""
        check_relative(rel, what)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(rel))["Body"].read()
        except ClientError as exc:
            if _missing(exc):
                raise ArtifactIntegrityError(f"{what}: artefact {self.locate(rel)} is missing",
                                             fix="restore it from a backup or register the model again") from exc
            raise self._unreachable(exc, f"{what}: cannot read {self.locate(rel)}") from exc
        except BotoCoreError as exc:
            raise self._unreachable(exc, f"{what}: cannot read {self.locate(rel)}") from exc
        actual = artifacts.sha256_bytes(body)
        if actual != expected_sha256:
            raise ArtifactIntegrityError(f"{what}: {self.locate(rel)} has sha256 {actual} but {expected_sha256} "
                                         "was recorded at registration; refusing to use it",
                                         fix="restore the object from a backup or register the model again")
        return body

    def local_path(self, rel: str, *, expected_sha256: str, what: str) -> Path:
        """Download the verified object into the private cache; returns the cached file."""
        data = self.read(rel, expected_sha256=expected_sha256, what=what)
        private_dir(self.cache)
        return artifacts.write_atomic(self.cache, expected_sha256, Path(rel).suffix, data)

    def files(self) -> list[StoredFile]:
        """Every object under the prefix (S3 has no partial objects)."""
        out, now = [], time.time()
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    rel = PREFIX + obj["Key"][len(self.prefix):]
                    out.append(StoredFile(rel, self.locate(rel), now - obj["LastModified"].timestamp(),
                                          partial=False))
        except (BotoCoreError, ClientError) as exc:
            raise self._unreachable(exc, f"cannot list {self.display}") from exc
        return out

    def hide(self, found: StoredFile) -> Any:
        return found  # nothing to rename in S3: the second look at the index happens before drop

    @staticmethod
    def restore(handle: Any) -> None:
        """Nothing was moved."""

    def drop(self, handle: StoredFile) -> None:
        self._call(f"removal of {handle.rel}", self.client.delete_object, Key=self._key(handle.rel))
