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


def _action_imports(path: Path) -> set[str]:
    """Modules of mlops.actions that ``path`` imports, by their short name."""
    out = set()
    for mod in _imports(path):
        if mod.startswith("mlops.actions."):
            out.add(mod.split(".")[2])
    # `from mlops.actions import train` names the module in the imported names
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "mlops.actions":
            out |= {a.name for a in node.names}
    return out


def _dispatch_modules() -> set[str]:
    from mlops.actions.dispatch import ACTIONS
    return {target.split(":")[0] for target in ACTIONS.values()}


def test_actions_never_import_each_other_or_the_app():
    """An action module imports support modules (context, outputs, registry_access, views,
    sources, ...) and the engine; never another action of the dispatch table, nor the app.
    Support modules do not reach into actions either, so no path goes around the rule."""
    actions = _dispatch_modules()
    bad = []
    for path in sorted((PKG / "actions").glob("*.py")):
        name = path.stem
        if name in ("dispatch", "__init__"):  # the table imports every action (by name)
            continue
        for other in sorted(_action_imports(path) & actions - {name}):
            bad.append(f"actions/{name}.py imports the action module {other}")
        bad += [f"actions/{name}.py imports {m}" for m in sorted(_imports(path))
                if m.startswith(("mlops.app", "mlops.cli"))]
    assert not bad, "\n".join(bad)


def test_every_dispatch_target_is_a_module_of_mlops_actions():
    for module in _dispatch_modules():
        assert (PKG / "actions" / f"{module}.py").exists(), module


def test_the_checker_sees_imports_of_action_modules_by_name(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from mlops.actions import train, outputs\nimport mlops.actions.drift\n")
    assert _action_imports(f) == {"train", "outputs", "drift"}
