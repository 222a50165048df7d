"""The wheel's contents are declared in pyproject.toml: every package under mlops/, and
the top-level conf/ and templates/ mapped into it as mlops/conf and mlops/templates."""
from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_under_mlops_is_listed():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mlops").rglob("__init__.py")}
    listed = set(SETUPTOOLS["packages"])
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert listed - found == {"mlops.conf", "mlops.templates"}


def test_conf_and_templates_map_into_the_package_without_moving():
    assert SETUPTOOLS["package-dir"] == {"mlops.conf": "conf", "mlops.templates": "templates"}
    data = SETUPTOOLS["package-data"]
    # every file there matches the declared globs, so none is left out of the wheel
    conf_files = [p for p in (ROOT / "conf").rglob("*") if p.is_file()
                  and "local" not in p.relative_to(ROOT / "conf").parts]
    assert data["mlops.conf"] == ["**/*.yaml"] and conf_files
    assert all(p.suffix == ".yaml" for p in conf_files), [p for p in conf_files if p.suffix != ".yaml"]
    templates = [p for p in (ROOT / "templates").rglob("*") if p.is_file()]
    assert data["mlops.templates"] == ["*.html"]
    assert all(p.suffix == ".html" and p.parent == ROOT / "templates" for p in templates)


def test_a_checkout_finds_its_top_level_conf_and_templates():
    from mlops.package_files import BUILTIN_CONF, TEMPLATES_DIR
    assert BUILTIN_CONF == ROOT / "conf" and TEMPLATES_DIR == ROOT / "templates"
