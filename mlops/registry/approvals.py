"""Signed approvals: who may approve, what is signed, which approvals a gate counts.

An approver is a name declared in the registry config with an Ed25519 public key. The
key is the identity: a name typed on the command line proves nothing, a signature only
the holder of the private key can make does. ``approve`` signs

    {model, version, artifact_sha256, alias, approver, ts}

so an approval cannot be moved to another version, another artefact or another alias.
A gate counts an approval only if its signature verifies under the key *currently
declared* for that name and the approver is not the version's trainer (neither the
``who`` recorded at registration nor the account that registered it).
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops.errors import ConfigError
from mlops.registry.signing import fingerprint, parse_public_key, public_key_text, verify_signature

# Names end up in logs, reports and HTTP headers: printable, no spaces or control characters.
IDENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,63}$")


def check_identity(value: Any, *, key: str) -> str:
    """Return a valid approver/actor name or raise ConfigError naming ``key``."""
    if not isinstance(value, str) or not IDENTITY.match(value):
        raise ConfigError(f"must be 1-64 letters, digits or _.@+- (no spaces or control characters); "
                          f"got {value!r} instead", key=key, fix="use a plain user name like 'alice'")
    return value


def parse_approvers(spec: Mapping[str, Any] | None, *, key: str = "registry.approvers") -> dict[str, str]:
    """``{name: public key text}`` from ``{name: 'ed25519:...'}`` (keys already read from files)."""
    out: dict[str, str] = {}
    for name, text in (spec or {}).items():
        check_identity(name, key=f"{key}.{name}")
        parse_public_key(text, key=f"{key}.{name}.public_key")
        out[name] = text.strip()
    return out


def payload(*, model: str, version: int, artifact_sha256: str, alias: str, approver: str,
            ts: str) -> dict[str, Any]:
    """The exact content an approver signs."""
    return {"model": model, "version": version, "artifact_sha256": artifact_sha256, "alias": alias,
            "approver": approver, "ts": ts}


@dataclass(frozen=True)
class Counted:
    """Which approvals of a version count for an alias, and why the others do not."""

    valid: list[str]
    ignored: list[str]


def count(approvals: Iterable[dict[str, Any]], *, declared: Mapping[str, str], model: str,
          version: int, artifact_sha256: str, alias: str, trainers: set[str]) -> Counted:
    """Approvals (from :func:`mlops.registry.queries.approvals`) that a gate may count."""
    valid, ignored = set(), []
    for a in approvals:
        who = a["approver"]
        if a.get("alias") != alias:
            continue
        expected = payload(model=model, version=version, artifact_sha256=artifact_sha256,
                           alias=alias, approver=who, ts=a.get("ts"))
        if who in trainers:
            ignored.append(f"{who}: trained this version")
        elif who not in declared:
            ignored.append(f"{who}: not a declared approver")
        elif a.get("payload") != expected:
            ignored.append(f"{who}: signed content does not match this version/artefact/alias")
        elif not verify_signature(declared[who], expected, a.get("signature") or ""):
            ignored.append(f"{who}: signature does not verify under the declared key "
                           f"{fingerprint(declared[who])}")
        else:
            valid.add(who)
    return Counted(sorted(valid), ignored)


def key_matches(private_key: Any, declared_text: str) -> bool:
    """True when ``private_key``'s public half is the declared key."""
    return public_key_text(private_key.public_key()) == declared_text.strip()
