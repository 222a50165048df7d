"""Hostile configs: a YAML alias bomb, deep nesting, an oversize file, a deeply nested
override. Each is refused before Hydra composes anything, in one line naming the file (or
the override), exit 2; every config the project ships stays far inside the limits."""
from __future__ import annotations

import random

import pytest
import yaml
from fault_tools import one_line_error
from support import CONF, run_cli

from mlops.errors import ConfigError

# the limits (mlops.config.yaml_limits; spelled here so the CLI tests also run on code without it)
MAX_BYTES, MAX_NODES, MAX_DEPTH = 1_000_000, 100_000, 64


def measure(text: str, *, where: str):
    from mlops.config.yaml_limits import measure
    return measure(text, where=where)


def check_yaml_text(text: str, *, where: str) -> None:
    from mlops.config.yaml_limits import check_yaml_text
    check_yaml_text(text, where=where)


def alias_bomb() -> str:
    """Nine levels of nine aliases each: 9**9 (387 million) strings once expanded, in ~400 bytes."""
    lines = ["lol: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def expanded(value) -> int:
    """Brute force: values in the loaded (alias-expanded) document, keys counted as values."""
    if isinstance(value, dict):
        return 1 + sum(1 + expanded(v) for v in value.values())
    if isinstance(value, list):
        return 1 + sum(expanded(v) for v in value)
    return 1


def depth(value) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    return 0


def random_doc(rng: random.Random) -> str:
    """A small YAML text with anchors and aliases (each alias after its anchor)."""
    anchors, lines = [], []
    for i in range(rng.randint(1, 8)):
        kind = rng.choice(["scalar", "list", "map", "alias", "nested"])
        if kind == "alias" and anchors:
            lines.append(f"k{i}: *{rng.choice(anchors)}")
            continue
        items = [f"*{rng.choice(anchors)}" if anchors and rng.random() < 0.4 else str(rng.randint(0, 9))
                 for _ in range(rng.randint(0, 4))]
        body = {"scalar": "x", "list": f"[{', '.join(items)}]", "map": "{" + ", ".join(
            f"f{j}: {v}" for j, v in enumerate(items)) + "}", "nested": f"[[{', '.join(items)}], {{q: [1]}}]",
            "alias": "y"}[kind]
        anchor = f"a{i}"
        anchors.append(anchor)
        lines.append(f"k{i}: &{anchor} {body}")
    return "\n".join(lines) + "\n"


def test_measure_counts_what_loading_would_expand_without_expanding_it():
    rng = random.Random(23)
    for _ in range(300):
        text = random_doc(rng)
        loaded = yaml.safe_load(text)
        assert measure(text, where="doc") == (expanded(loaded), depth(loaded)), text


def test_an_alias_bomb_is_refused_from_its_events():
    text = alias_bomb()
    assert len(text.encode()) < 450
    with pytest.raises(ConfigError, match=f"more than {MAX_NODES:,} values"):
        check_yaml_text(text, where="conf/project.yaml")


def test_deep_nesting_and_size_are_refused_without_recursion():
    with pytest.raises(ConfigError, match=f"deeper than {MAX_DEPTH} levels"):
        check_yaml_text("x: " + "[" * 50_000 + "]" * 50_000 + "\n", where="deep.yaml")
    with pytest.raises(ConfigError, match=f"larger than {MAX_BYTES:,} bytes"):
        check_yaml_text("# padding\n" * (MAX_BYTES // 10 + 1), where="big.yaml")
    inside = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"  # the mapping is a level too
    assert measure(inside, where="ok.yaml")[1] == MAX_DEPTH  # the limit itself passes


def test_the_limits_are_the_documented_ones():
    from mlops.config import yaml_limits
    assert (yaml_limits.MAX_BYTES, yaml_limits.MAX_NODES, yaml_limits.MAX_DEPTH) == (MAX_BYTES, MAX_NODES, MAX_DEPTH)


def test_every_shipped_config_is_far_inside_the_limits():
    files = sorted(CONF.rglob("*.yaml"))
    assert len(files) > 20
    worst = max(measure(f.read_text(), where=str(f)) for f in files)
    assert worst[0] * 100 < MAX_NODES and worst[1] * 8 < MAX_DEPTH, worst


def _project(tmp_path, text: str):
    conf = tmp_path / "project" / "conf"
    conf.mkdir(parents=True)
    (conf / "project.yaml").write_text("# @package _global_\n" + text)
    return conf.parent


@pytest.mark.slow
@pytest.mark.parametrize("case", ["alias_bomb", "deep_nesting", "oversize"])
def test_a_hostile_project_config_is_one_line_exit_2_before_composition(tmp_path, case):
    text = {"alias_bomb": "bomb:\n" + "".join(f"  {line}\n" for line in alias_bomb().splitlines()),
            "deep_nesting": "deep: " + "[" * 20_000 + "]" * 20_000 + "\n",
            "oversize": "big: x\n" + "# padding\n" * (MAX_BYTES // 10)}[case]
    project = _project(tmp_path, text)
    # the subprocess timeout is the guard: composing the bomb ran for minutes and gigabytes
    done = run_cli(["action=registry", f"paths.home={tmp_path / 'home'}"], cwd=project, timeout=60)
    line = one_line_error(done.stderr)
    assert done.returncode == 2 and str(project / "conf" / "project.yaml") in line, done.stderr


@pytest.mark.slow
def test_a_deeply_nested_override_is_one_line_exit_2(tmp_path):
    done = run_cli(["action=registry", f"paths.home={tmp_path / 'home'}", "+x=" + "[" * 3000 + "]" * 3000],
                   cwd=tmp_path, timeout=60)
    line = one_line_error(done.stderr)
    assert done.returncode == 2 and "override '+x=[[[" in line and "nests deeper" in line, done.stderr
