"""The examples in the monitoring docstrings run and give what they show."""
from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["stats", "columns", "reference", "policy", "drift", "detectors", "performance",
           "compare", "history", "multivariate", "kolmogorov", "calibration"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"mlops.monitoring.{name}")
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
