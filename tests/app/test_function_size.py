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


# Issue 21 item 5: an action is a verb (typed settings in, the engine called, the report
# written); its pipeline lives in the engine. The kit beside the actions is exempt.
ACTION_KIT = {"__init__", "context", "dispatch", "outputs"}
MAX_ACTION_LINES = 80


def module_code_lines(path: Path) -> int:
    """Lines of a module's code, measured as functions are: from its first statement after
    the module docstring to the end of its last (``end_lineno - lineno + 1``)."""
    body = ast.parse(path.read_text(), filename=str(path)).body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return body[-1].end_lineno - body[0].lineno + 1 if body else 0


def test_module_code_lines_skip_the_docstring_only(tmp_path):
    f = tmp_path / "m.py"
    f.write_text('"""Doc\n\nmore doc.\n"""\nimport os\n\n\ndef f():\n    return os.sep\n')
    assert module_code_lines(f) == 5
    f.write_text("x = 1\ny = '''a\nb'''\n")
    assert module_code_lines(f) == 3
    f.write_text('"""Only a docstring."""\n')
    assert module_code_lines(f) == 0


def test_every_action_is_at_most_80_lines():
    sizes = {p.stem: module_code_lines(p) for p in sorted((PKG / "actions").glob("*.py"))
             if p.stem not in ACTION_KIT}
    assert len(sizes) > 10  # the actions were found
    too_long = {name: n for name, n in sizes.items() if n > MAX_ACTION_LINES}
    assert not too_long, f"move these actions' pipelines into the engine: {too_long}"
