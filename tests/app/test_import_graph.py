"""Imports point one way (DESIGN.md §2): engine packages never reach up to the actions,
the config layer, the app or the CLI. Checked on the source (every import statement,
function-level ones included), so a lazy import cannot hide a cycle."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "mlops"
ENGINE = ("data", "features", "training", "registry", "serving", "monitoring", "experiments",
          "reports")
UPPER = ("mlops.actions", "mlops.config", "mlops.app", "mlops.cli", "mlops.project")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def test_engine_packages_never_import_actions_config_or_app():
    bad = []
    for pkg in ENGINE:
        for path in sorted((PKG / pkg).rglob("*.py")):
            for mod in _imports(path):
                if mod.startswith(UPPER):
                    bad.append(f"{path.relative_to(PKG.parent)} imports {mod}")
    assert not bad, "\n".join(bad)


def test_the_checker_sees_function_level_imports(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from mlops.actions.train import score\n")
    assert "mlops.actions.train" in _imports(f)


def test_features_never_import_serving():
    """features/online sits below serving (DESIGN §2): serving builds on it, not back."""
    bad = [f"{path.relative_to(PKG.parent)} imports {mod}"
           for path in sorted((PKG / "features").rglob("*.py"))
           for mod in _imports(path) if mod.startswith("mlops.serving")]
    assert not bad, "\n".join(bad)
