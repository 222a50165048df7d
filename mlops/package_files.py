"""Where the built-in configs and report templates are, installed or in a checkout.

The repository keeps them at its top level (``conf/``, ``templates/``: DESIGN.md §2);
the wheel ships them inside the package as ``mlops/conf`` and ``mlops/templates``
(``[tool.setuptools] package-dir`` in pyproject.toml maps one onto the other). So an
installed package finds them beside its own modules, and a source checkout (or an
editable install of one) finds them beside the ``mlops/`` folder.

>>> (BUILTIN_CONF / "config.yaml").is_file(), (TEMPLATES_DIR / "base.html").is_file()
(True, True)
"""
from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _located(name: str) -> Path:
    """``mlops/<name>`` when installed from a wheel, else ``<checkout>/<name>``."""
    inside = _PACKAGE / name
    return inside if inside.is_dir() else _PACKAGE.parent / name


BUILTIN_CONF = _located("conf")
TEMPLATES_DIR = _located("templates")
