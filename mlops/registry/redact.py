"""Keep secrets out of lineage and reports.

:func:`redact` returns a copy of a nested config (dicts, lists, scalars) where

- the value of every key whose name contains ``token``, ``password``, ``secret``
  (also ``api_key``, ``apikey``, ``private_key``, ``credential``), case-insensitive, is
  replaced by ``"<redacted>"`` (a null stays null, so "not configured" is still visible);
- the password inside any URL-looking string (``redis://user:pw@host:6379/0``) is
  replaced, the rest of the URL kept.

It is applied to the resolved config recorded at registration (lineage) and to what
reports write, so an admin token or a Redis password given as config is never stored.

Example:
    >>> redact({"serving": {"admin_token": "s3", "store": {"url": "redis://:pw@h:6379/0"}}})
    {'serving': {'admin_token': '<redacted>', 'store': {'url': 'redis://:<redacted>@h:6379/0'}}}
"""
from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
_SECRET_KEY = re.compile(r"token|password|passwd|secret|api_?key|private_?key|credential",
                         re.IGNORECASE)
# scheme://[user]:password@host  ->  keep scheme, user and host
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^/@:\s]*:)(?P<pw>[^@/\s]+)(?=@)")


def is_secret_key(key: object) -> bool:
    """True for config keys whose values are secrets (``admin_token``, ``db_password``...)."""
    return isinstance(key, str) and _SECRET_KEY.search(key) is not None


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + REDACTED, text)


def redact(value: Any) -> Any:
    """A copy of ``value`` without secrets (see the module docstring)."""
    if isinstance(value, dict):
        return {k: (REDACTED if is_secret_key(k) and v is not None and not isinstance(v, (dict, list))
                    else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str) and "://" in value:
        clean = redact_text(value)
        return value if clean == value else clean  # keeps str subclasses (Markup) intact
    return value
