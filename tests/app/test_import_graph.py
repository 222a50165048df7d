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


# what an action may import besides the engine: every action module needs these three
ACTION_KIT = {"context", "dispatch", "outputs"}
# the engine: its packages and its top-level modules (errors, constraints, files, home)
ENGINE_MODULES = tuple(f"mlops.{p}" for p in ENGINE) + (
    "mlops.errors", "mlops.constraints", "mlops.filesystem", "mlops.home", "mlops.package_files")


def test_actions_hold_actions_context_dispatch_and_outputs_only():
    """Helpers live in the engine (pipelines) or in mlops/reports/views (display values),
    never beside the actions."""
    modules = {p.stem for p in (PKG / "actions").glob("*.py")} - {"__init__"}
    assert modules - _dispatch_modules() - ACTION_KIT == set()


def test_actions_import_only_context_dispatch_outputs_and_the_engine():
    """An action module imports context, outputs (dispatch: the table) and the engine; never
    another action, a helper beside them, the app, the CLI or the config layer (the context
    turns config into typed settings, once)."""
    bad = []
    for path in sorted((PKG / "actions").glob("*.py")):
        name = path.stem
        if name == "__init__":
            continue
        for other in sorted(_action_imports(path) - ACTION_KIT - {name}):
            bad.append(f"actions/{name}.py imports the action module {other}")
        if name == "context":  # the boundary: it alone reads the config layer
            continue
        bad += [f"actions/{name}.py imports {m}" for m in sorted(_imports(path))
                if m.startswith("mlops") and not m.startswith(("mlops.actions", *ENGINE_MODULES))]
    assert not bad, "\n".join(bad)


def test_the_action_rule_sees_a_helper_import(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from mlops.actions.drift_checks import policy_from\nfrom mlops.config import x\n")
    assert _action_imports(f) - ACTION_KIT == {"drift_checks"}
    assert not "mlops.config".startswith(ENGINE_MODULES)


def test_every_dispatch_target_is_a_module_of_mlops_actions():
    for module in _dispatch_modules():
        assert (PKG / "actions" / f"{module}.py").exists(), module


def test_the_checker_sees_imports_of_action_modules_by_name(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("from mlops.actions import train, outputs\nimport mlops.actions.drift\n")
    assert _action_imports(f) == {"train", "outputs", "drift"}
