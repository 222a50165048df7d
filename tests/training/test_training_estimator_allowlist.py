"""``_target_`` is an exact allowlist: what sklearn.utils.all_estimators() lists, plus
registry.trusted_types; checked on the string, before any import or instantiation."""
from __future__ import annotations

import sys

import pytest
from sklearn.utils import all_estimators

from mlops.errors import ConfigError
from mlops.training.estimator import build_estimator, sklearn_estimators


def test_allowlist_is_exactly_what_all_estimators_lists():
    listed = {cls for _, cls in all_estimators()}
    allowed = sklearn_estimators()
    assert set(allowed.values()) == listed
    for name, cls in all_estimators():
        assert allowed[f"{cls.__module__}.{name}"] is cls
    # public paths users write in YAML resolve to the same classes
    for path in ("sklearn.linear_model.LogisticRegression", "sklearn.ensemble.HistGradientBoostingClassifier",
                 "sklearn.ensemble.RandomForestClassifier", "sklearn.preprocessing.StandardScaler"):
        assert allowed[path].__name__ == path.rsplit(".", 1)[1]
    assert all(".tests." not in p and not p.startswith("sklearn.utils._testing") for p in allowed)


@pytest.mark.parametrize("target", [
    "sklearn.callback._progressbar.Thread",  # passed the old "sklearn." prefix check
    "sklearn.utils.Bunch", "threading.Thread", "os.system", "builtins.eval",
    "sklearn.metrics.roc_auc_score", "sklearn.linear_model.NoSuchModel",
])
def test_anything_else_is_refused(target):
    with pytest.raises(ConfigError, match="not an allowed estimator") as err:
        build_estimator(target, {})
    assert err.value.key == "model._target_" and err.value.exit_code == 2


def test_refused_target_is_never_imported(tmp_path, monkeypatch):
    (tmp_path / "evil_estimators.py").write_text(
        "import pathlib\npathlib.Path(__file__).with_name('IMPORTED').write_text('x')\n"
        "class Evil:\n    def __init__(self, a=1):\n        self.a = a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="not an allowed estimator"):
        build_estimator("evil_estimators.Evil", {})
    assert "evil_estimators" not in sys.modules and not (tmp_path / "IMPORTED").exists()
    # listed in registry.trusted_types, the same class is built
    est = build_estimator("evil_estimators.Evil", {"a": 3}, trusted=["evil_estimators.Evil"])
    assert est.a == 3
    sys.modules.pop("evil_estimators", None)


def test_wrong_param_values_are_one_line_naming_the_parameter():
    with pytest.raises(ConfigError) as err:
        build_estimator("sklearn.linear_model.LogisticRegression", {"C": -1})
    assert err.value.key == "model.params.C"
    assert "must be a float in the range (0.0, inf]" in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="max_iter.*must be an int") as err:
        build_estimator("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": "many"})
    with pytest.raises(ConfigError, match=r"no parameter\(s\) \['Cee'\]; valid: \[.*'C'"):
        build_estimator("sklearn.linear_model.LogisticRegression", {"Cee": 1})


def test_train_with_a_wrong_param_exits_2_with_one_line(run_action, capsys):
    code, d = run_action("action=train", "data.n_users=200", "data.days=100", "model.params.C=-1", out="bad")
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and "Traceback" not in err
    assert err.startswith("error: model.params.C: The 'C' parameter of LogisticRegression")
