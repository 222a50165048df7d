"""The documentation site: its generated reference pages follow the code, and the getting
started page is the walkthrough that tests/project/test_project_readme.py runs; the README is
a landing page that links every page and keeps the two set-up commands."""
from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hook():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "docs" / "_hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blocks(text: str) -> list[tuple[str, str]]:
    return re.findall(r"```(\w+)\n(.*?)```", text, flags=re.S)


def test_readme_is_a_landing_page_linking_every_page_with_the_two_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    first = _blocks(readme)[0]
    commands = [line for line in first[1].splitlines() if line.strip()]
    assert first[0] == "bash" and len(commands) == 2
    assert commands[0].endswith("python run.py") and commands[1].endswith("python -m pytest")
    assert _blocks((ROOT / "docs" / "index.md").read_text())[0] == first  # the site's home says the same
    linked = set(re.findall(r"\]\(docs/([\w/.-]+\.md)", readme))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages - {"index.md"} <= linked, pages - linked
    assert len(readme.splitlines()) < 400


def test_nav_names_every_page_and_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:", 1)[1]
    named = set(re.findall(r":\s*([\w/.-]+\.md)", nav))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    generated = {"reference/configuration.md", "reference/http-api.md"}
    assert named == pages | generated


def test_configuration_reference_lists_every_serving_key_with_default_and_rule(hook):
    from mlops.serving.settings import BreakerSettings, ServingSettings, StoreSettings
    page = hook.configuration_page()
    rows = {m[0]: m[1:] for m in re.findall(r"^\| `([^`]+)` \| (.*?) \| (.*?) \| (.*?) \| (.*?) \|$",
                                            page, flags=re.M)}
    for prefix, cls in (("serving", ServingSettings), ("serving.store", StoreSettings),
                        ("serving.breaker", BreakerSettings)):
        for f in dataclasses.fields(cls):
            assert f"{prefix}.{f.name}" in rows, f"{prefix}.{f.name}"
    kind, default, rule, meaning = rows["serving.unknown_fields"]
    assert (kind, default, rule) == ("str", "reject", "one of ['reject', 'ignore']")
    assert "reject (422)" in meaning
    assert rows["serving.breaker.window"][1:3] == ("null", "an int >= 10 or None")
    assert "calibrated" in rows["serving.breaker.window"][3]
    assert rows["serving.breaker.on_trip"][1] == "abstain"   # conf/serving/realtime.yaml
    assert rows["serving.threshold"][1] == "null"            # the version's own, unless overridden
    assert rows["serving.log_dir"][1] == "${paths.home}/predictions"
    assert "monitoring.thresholds" in rows and "features.windows[].aggs" in rows


def test_http_api_page_is_the_served_openapi_document(hook):
    doc = hook.openapi_document()
    record = doc["components"]["schemas"]["Record"]
    assert record["additionalProperties"] is False
    page = hook.http_api_page(doc)
    for field in record["properties"]:
        assert f"| `{field}` |" in page
    assert "## `POST /predict`" in page and "## `GET /ready`" in page
