"""Keep secrets out of lineage and reports.

:func:`redact` returns a copy of a nested config (dicts, lists, scalars) where

- the value of every key whose name contains ``token``, ``password``, ``secret``
  (also ``api_key``, ``apikey``, ``private_key``, ``credential``), case-insensitive, is
  replaced by ``"<redacted>"`` (a null stays null, so "not configured" is still visible);
- the password inside any URL-looking string (``redis://user:pw@host:6379/0``) is
  replaced, the rest of the URL kept.

It is applied to the resolved config recorded at registration (lineage) and to what
reports write, so an admin token or a Redis password given as config is never stored.
:func:`redact_override` does the same for a command-line override (``serving.admin_token=s3``
-> ``serving.admin_token=<redacted>``): the run's JSON results, reports, index and
Hydra's own copies of the config and overrides print overrides, never their secrets.

Example:
    >>> redact({"serving": {"admin_token": "s3", "store": {"url": "redis://:pw@h:6379/0"}}})
    {'serving': {'admin_token': '<redacted>', 'store': {'url': 'redis://:<redacted>@h:6379/0'}}}
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"token|password|passwd|secret|api_?key|private_?key|credential",
                         re.IGNORECASE)
# scheme://[user]:password@host  ->  keep scheme, user and host
# (Hydra's multirun escapes the colons: redis\://\:pw@host)
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*\\?:\\?/\\?/[^/@:\s\\]*\\?:)(?P<pw>[^@/\s]+)(?=@)")


def is_secret_key(key: object) -> bool:
    """True for config keys whose values are secrets (``admin_token``, ``db_password``...)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


# key=value inside any text (a headline, an error, Hydra's override_dirname "a=1,b=2")
_ASSIGNMENT = re.compile(r"(?P<key>(?<![\w.@/-])[A-Za-z_][\w.@/-]*)=(?P<value>[^\s,]+)")


def _assignment(found: re.Match) -> str:
    key = found.group("key")
    return f"{key}={REDACTED}" if is_secret_key(key.split(".")[-1]) else found.group(0)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it, and the value of every ``key=value``
    whose key is a secret's, replaced."""
    if "://" in text:
        text = _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)
    return _ASSIGNMENT.sub(_assignment, text) if "=" in text else text


# [+~]key.path=value, as Hydra takes it on the command line (and in override_dirname)
_OVERRIDE = re.compile(r"^(?P<key>[+~]{0,2}[A-Za-z_][\w.@/-]*)=(?P<value>.*)$", re.DOTALL)


def redact_override(text: str) -> str:
    """A command-line override without its secret: the value of a secret key is replaced,
    as is the password of a URL in any value.

        >>> redact_override("serving.admin_token=s3cret")
        'serving.admin_token=<redacted>'
    """
    found = _OVERRIDE.match(text)
    if found is not None and is_secret_key(found.group("key").split(".")[-1]):
        return f"{found.group('key')}={REDACTED}"
    return redact_text(text)


def redact_overrides(overrides: Any) -> list[str]:
    """:func:`redact_override` of each item."""
    return [redact_override(str(o)) for o in overrides or ()]


def redact(value: Any) -> Any:
    """A copy of ``value`` without secrets (see the module docstring)."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) and v is not None and not isinstance(v, (dict, list))
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str) and ("://" in value or "=" in value):
        clean = redact_text(value)
        return value if clean == value else clean  # keeps str subclasses (Markup) intact
    return value

# libyaml's safe loader and dumper when PyYAML has them (every run reads Hydra's saved config:
# ~10x faster than the pure-Python ones), the same safe subset either way
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def redact_yaml_file(path: Path) -> bool:
    """Rewrite a YAML file (Hydra's saved config, overrides, multirun.yaml) without its
    secrets; True when something was redacted. An unreadable file is left alone."""
    try:
        saved = yaml.load(path.read_text(), Loader=_SAFE_LOADER)
    except (OSError, yaml.YAMLError):
        return False
    clean = redact(saved)
    if clean == saved:
        return False
    path.write_text(yaml.dump(clean, Dumper=_SAFE_DUMPER, sort_keys=False, allow_unicode=True))
    return True
