"""Hostile feature expressions through the command line: a derived feature that is too long,
too deep, or one that makes polars panic is refused before any data is read, in one line
naming the feature's config key, exit 2, quickly (the guard never recurses; before: a
1,000-term sum trained and registered, then every small request answered 500 with a
RecursionError; '- ' * 2000 was a traceback; greatest() panicked past `except Exception`).

The parser's own limits and the panic path are tested in tests/features/test_features_sql_tree.py;
this is what a user sees."""
from __future__ import annotations

import time

import pytest
from fault_tools import one_line_error
from support import run_cli

HOSTILE = {
    "a 1,000-term sum": " + ".join(["amount"] * 1000),
    "2,000 nested minus signs": "- " * 2000 + "amount",
    "1,200 nested NOTs": "NOT " * 1200 + "(amount > 1)",
    "greatest() without arguments (a polars panic)": "greatest()",
    "an impossible decimal (a polars panic)": "amount::decimal(38,99)",
}


@pytest.mark.parametrize("what", list(HOSTILE))
def test_a_hostile_derived_expression_is_one_line_exit_2_naming_the_feature(tmp_path, what):
    expr = HOSTILE[what].replace('"', '\\"')
    t0 = time.perf_counter()
    proc = run_cli(["action=features", f"paths.home={tmp_path / 'home'}",
                    f"hydra.run.dir={tmp_path / 'run'}",
                    f'features.groups.user_spend.derived=[{{name: hostile, expr: "{expr}"}}]'],
                   cwd=tmp_path, timeout=120)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, (what, proc.stdout[-2000:], proc.stderr[-2000:])
    line = one_line_error(proc.stderr)
    assert "hostile" in line and "derived" in line, line  # names the feature and its config key
    assert len(line) < 600, line  # not the whole expression echoed back
    # nothing was computed: no features table in the run directory
    assert not list((tmp_path / "run").rglob("features*.parquet"))
    print(f"{what}: exit 2 in {elapsed:.1f} s: {line}")
