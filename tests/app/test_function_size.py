"""Issue 16: no function of 60 lines or more (measured on the source, as
``end_lineno - lineno + 1`` of every def, nested ones included).

Covers every package of the engine, the actions and the top-level modules.
"""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "mlops"
MAX_LINES = 59


def function_sizes(root: Path) -> list[tuple[int, str]]:
    """(lines, "package/module.py:function") of every function under ``root``."""
    out = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((node.end_lineno - node.lineno + 1,
                            f"{path.relative_to(root.parent).as_posix()}:{node.name}"))
    return out


def test_function_sizes_measures_a_known_source(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    x = 1\n    return x\n\n\nasync def g():\n    pass\n")
    got = sorted((n, name.rsplit(":", 1)[1]) for n, name in function_sizes(tmp_path))
    assert got == [(2, "g"), (3, "f")]


def test_no_function_reaches_60_lines():
    too_long = sorted((n, name) for n, name in function_sizes(PKG) if n > MAX_LINES)
    assert not too_long, f"split these functions (lines, where): {too_long}"
