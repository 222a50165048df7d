"""Every ``key=value`` an error's fix suggests can be pasted on the command line as written:
the key exists in the composed config, or it is new under a plain dict and carries the ``+``
Hydra then needs (``+monitoring.column_types.x=categorical``)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from support import compose_cfg

PKG = Path(__file__).resolve().parents[2] / "mlops"
SUGGESTION = re.compile(r"(?<![\w.])(\+?)([a-z_]+(?:\.[a-z_{}]+)+)=")
MISSING = object()


def _text(node: ast.AST) -> str:
    """A fix= argument as text, ``{...}`` standing for each interpolated value."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp):
        return _text(node.left) + _text(node.right)
    return ""


def suggestions() -> list[tuple[str, str, bool]]:
    """(file, key, has_plus) of every key=value in a fix= argument under mlops/."""
    out = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg == "fix":
                for plus, key in SUGGESTION.findall(_text(node.value)):
                    out.append((path.name, key, bool(plus)))
    return out


def _is_plain_dict(node) -> bool:
    return isinstance(node, DictConfig) and node._metadata.object_type in (None, dict)


def test_every_suggested_override_runs_as_written(tmp_path):
    # the groups whose keys hints name: an experiment, and a file source (data.path, ...)
    configs = [compose_cfg(["experiment=ab_v1_v2"], tmp_path), compose_cfg(["data=files"], tmp_path)]
    found = suggestions()
    assert len(found) >= 10
    bad = []
    for where, key, plus in found:
        parent, _, leaf = key.rpartition(".")
        if "{" in parent:
            continue
        parents = [OmegaConf.select(c, parent, default=MISSING) for c in configs]
        dict_parent = any(_is_plain_dict(node) for node in parents)
        if "{" in leaf:  # a name filled in at run time: new keys need a plain dict and a +
            if dict_parent and not plus:
                bad.append(f"{where}: {key} needs a leading +")
            continue
        exists = any(OmegaConf.select(c, key, default=MISSING) is not MISSING for c in configs)
        if plus and (exists or not dict_parent):
            bad.append(f"{where}: +{key} cannot be appended")
        if not plus and not exists:
            bad.append(f"{where}: {key} is not a key of the config")
    assert not bad, "\n".join(bad)
