"""Ed25519 keys and signatures for approvals (``cryptography`` package).

A public key is written as one line, ``ed25519:<base64 of the 32 raw bytes>``, the text
an approver pastes into ``registry.approvers.<name>.public_key``. Private keys are
unencrypted PKCS#8 PEM files, created 0600; a key file others can read is refused
(as ssh does), because a readable key is no longer one person's identity.

    >>> public = generate_keypair(tmp_path / "alice.key")
    >>> key = load_private_key(tmp_path / "alice.key")
    >>> verify_signature(public, {"model": "m"}, sign(key, {"model": "m"}))
    True
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlops.errors import ConfigError
from mlops.home import FILE_MODE, private_dir

PREFIX = "ed25519:"


def canonical(payload: Any) -> bytes:
    """The exact bytes that are signed or hashed: sorted keys, no spaces, ASCII."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=True).encode()


def public_key_text(key: Ed25519PublicKey) -> str:
    """``ed25519:<base64>`` for a public key."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode()


def parse_public_key(text: Any, *, key: str) -> Ed25519PublicKey:
    """Parse ``ed25519:<base64>``; anything else is a ConfigError naming ``key``."""
    fix = "paste the line printed by `python run.py action=keygen registry.approver=<name>`"
    if not isinstance(text, str) or not text.strip().startswith(PREFIX):
        raise ConfigError(f"must be a public key like 'ed25519:AAAA...'; got {text!r} instead",
                          key=key, fix=fix)
    try:
        raw = base64.b64decode(text.strip()[len(PREFIX):], validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ConfigError(f"is not a valid Ed25519 public key (32 bytes, base64): {text!r}",
                          key=key, fix=fix) from None


def fingerprint(public_text: str) -> str:
    """Short, stable id of a public key: the first 16 hex digits of sha256 of its text."""
    return hashlib.sha256(public_text.strip().encode()).hexdigest()[:16]


def generate_keypair(private_path: Path) -> str:
    """Write a new private key to ``private_path`` (0600, never overwritten) and
    ``<same name>.pub``; return the public key text."""
    private_path = Path(private_path)
    if private_path.exists():
        raise ConfigError(f"{private_path} already exists; refusing to overwrite a private key",
                          key="registry.key_file",
                          fix="delete it yourself if you mean to replace it, or choose another path")
    private_dir(private_path.parent)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    public = public_key_text(key.public_key())
    pub_path = private_path.with_suffix(".pub")
    fd = os.open(pub_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w") as fh:
        fh.write(public + "\n")
    return public


def load_private_key(path: Path, *, key: str = "registry.key_file") -> Ed25519PrivateKey:
    """Read a private key file; missing, readable by others or not Ed25519 -> ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"private key file {path} does not exist", key=key,
                          fix="create it with `python run.py action=keygen registry.approver=<name>` "
                              "or pass registry.key_file=<path>")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"private key file {path} has permissions {mode:#o}: others can read it",
                          key=key, fix=f"chmod 600 {path}")
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{path} is not an unencrypted PEM private key ({exc})", key=key,
                          fix="use a key written by action=keygen") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise ConfigError(f"{path} holds a {type(loaded).__name__}, not an Ed25519 key", key=key,
                          fix="use a key written by action=keygen")
    return loaded


def sign(private_key: Ed25519PrivateKey, payload: dict[str, Any]) -> str:
    """Base64 Ed25519 signature of the canonical JSON of ``payload``."""
    return base64.b64encode(private_key.sign(canonical(payload))).decode()


def verify_signature(public_text: str, payload: dict[str, Any], signature: str) -> bool:
    """True when ``signature`` is a valid signature of ``payload`` by ``public_text``'s key."""
    try:
        public = parse_public_key(public_text, key="public_key")
        public.verify(base64.b64decode(signature, validate=True), canonical(payload))
        return True
    except (ConfigError, InvalidSignature, binascii.Error, ValueError, TypeError):
        return False
