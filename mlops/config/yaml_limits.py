"""Limits a user's YAML (and command-line overrides) must meet before Hydra composes it.

Composition copies every alias it expands and parses nesting recursively, so a
400-byte file of nested aliases (a "billion laughs") or a few thousand brackets cost
minutes, gigabytes or a RecursionError before any check could run. These limits are
checked first, on the raw text and on PyYAML's event stream (which expands nothing
and recurses nowhere), and a file over one is a one-line ConfigError naming it:

- ``MAX_BYTES``: 1 MB per file (config files are a few kB);
- ``MAX_NODES``: 100,000 values (scalars, lists, mappings) once aliases are expanded;
- ``MAX_DEPTH``: 64 levels of nesting (in files and in override values).

    >>> check_yaml_text("a: &a [1, 2]\\nb: [*a, *a]\\n", where="conf/x.yaml")   # fine: 9 values
"""
from __future__ import annotations

from pathlib import Path

import yaml

from mlops.errors import ConfigError

MAX_BYTES = 1_000_000
MAX_NODES = 100_000
MAX_DEPTH = 64
_FIX = "keep config files small and plain (anchors that expand to a few values, nesting a few levels deep)"


def _over(where: str, what: str) -> ConfigError:
    return ConfigError(f"{where}: {what}; refused before composing the config", fix=_FIX)


def measure(text: str, *, where: str, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> tuple[int, int]:
    """``(values, depth)`` of a YAML text once its aliases are expanded, counted on the
    event stream without expanding anything; ConfigError as soon as one passes its limit.
    A value is a scalar, a list or a mapping (a mapping's keys count as scalars)."""
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (values, depth) it expands to
    stack: list[list] = [[0, 0, None]]         # open collections: [values, depth below, anchor]
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append([1, 0, event.anchor])
            if len(stack) - 1 > max_depth:
                raise _over(where, f"nests deeper than {max_depth} levels")
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            count, below, anchor = stack.pop()
            node = (count, below + 1)
        elif isinstance(event, yaml.ScalarEvent):
            node, anchor = (1, 0), event.anchor
        elif isinstance(event, yaml.AliasEvent):
            node, anchor = anchors.get(event.anchor, (1, 0)), None
        else:
            continue
        if anchor is not None:
            anchors[anchor] = node
        parent = stack[-1]
        parent[0] += node[0]
        parent[1] = max(parent[1], node[1])
        if parent[0] > max_nodes:
            raise _over(where, f"expands to more than {max_nodes:,} values (aliases included)")
        if len(stack) - 1 + parent[1] > max_depth:
            raise _over(where, f"nests deeper than {max_depth} levels")
    return stack[0][0], stack[0][1]


def check_yaml_text(text: str, *, where: str) -> None:
    """ConfigError when ``text`` is over a limit; invalid YAML is left for Hydra to report."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise _over(where, f"is larger than {MAX_BYTES:,} bytes")
    try:
        measure(text, where=where)
    except yaml.YAMLError:
        return


def check_config_dir(conf_dir: Path | str) -> None:
    """Check every ``*.yaml`` / ``*.yml`` file under a project's ``conf/`` folder."""
    root = Path(conf_dir)
    for path in sorted(p for pattern in ("*.yaml", "*.yml") for p in root.rglob(pattern)):
        if not path.is_file():
            continue
        if path.stat().st_size > MAX_BYTES:  # before reading it
            raise _over(str(path), f"is larger than {MAX_BYTES:,} bytes")
        check_yaml_text(path.read_text(encoding="utf-8", errors="replace"), where=str(path))


def check_overrides(overrides: list[str]) -> None:
    """Command-line overrides: size and bracket nesting (Hydra's override parser recurses)."""
    for item in overrides:
        where = f"override {item[:40]!r}{'...' if len(item) > 40 else ''}"
        if len(item.encode("utf-8", "surrogatepass")) > MAX_BYTES:
            raise _over(where, f"is larger than {MAX_BYTES:,} bytes")
        depth = deepest = 0
        for ch in item:
            if ch in "[{(":
                depth += 1
                deepest = max(deepest, depth)
            elif ch in "]})":
                depth -= 1
        if deepest > MAX_DEPTH:
            raise _over(where, f"nests deeper than {MAX_DEPTH} levels")
