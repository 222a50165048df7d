"""Artefacts: the default trusted list loads real models; tampered, missing or untrusted files are refused."""
from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeRegressor

from mlops.errors import ArtifactIntegrityError
from mlops.registry import DEFAULT_TRUSTED_TYPES
from mlops.registry.artifacts import declared_types


class HomeMadeModel:
    """A class no allowlist knows: loading it must be refused."""

    def __init__(self, weight=1.0):
        self.weight = weight

    def predict(self, x):
        return np.asarray(x).sum(axis=1) * self.weight


def _register(reg, model, name="fraud", **meta):
    return reg.register(name, model, metadata={"metrics": {"roc_auc": 0.8}, **meta},
                        actor="alice")


def test_default_trusted_types_load_pipeline_and_logreg(tmp_path, logreg, hgb_pipeline, tiny_xy, tabular,
                                                       make_registry):
    reg = make_registry(tmp_path)
    _register(reg, logreg, name="lr")
    _register(reg, hgb_pipeline, name="hgb")
    x, _ = tiny_xy
    frame, _ = tabular
    lr, mv = reg.load_model("lr", 1, trusted=DEFAULT_TRUSTED_TYPES)
    np.testing.assert_array_equal(lr.predict_proba(x), logreg.predict_proba(x))
    assert mv.model_class == "sklearn.linear_model._logistic.LogisticRegression"
    hgb, _ = reg.load_model("hgb", "latest", trusted=DEFAULT_TRUSTED_TYPES)
    np.testing.assert_array_equal(hgb.predict_proba(frame), hgb_pipeline.predict_proba(frame))


@pytest.mark.parametrize(
    "make",
    [
        lambda x, y: RandomForestClassifier(n_estimators=3, random_state=0).fit(x, y),
        lambda x, y: DecisionTreeRegressor(max_depth=3).fit(x, y.astype(float)),
        lambda x, y: HistGradientBoostingRegressor(max_iter=5).fit(x, y.astype(float)),
        lambda x, y: __import__("sklearn.ensemble", fromlist=["x"]).HistGradientBoostingClassifier(
            max_iter=5, categorical_features=[0]).fit(np.c_[np.arange(len(y)) % 3, x], y),
    ],
    ids=["random_forest", "decision_tree", "hgb_regressor", "hgb_categorical"],
)
def test_default_trusted_types_cover_trees(tmp_path, tiny_xy, make, make_registry):
    x, y = tiny_xy
    model = make(x, y)
    data = sio.dumps(model)
    # Independent truth: whatever skops itself would not trust must be in our list.
    assert set(sio.get_untrusted_types(data=data)) <= set(DEFAULT_TRUSTED_TYPES)
    assert declared_types(data) <= set(DEFAULT_TRUSTED_TYPES)
    reg = make_registry(tmp_path)
    _register(reg, model)
    loaded, _ = reg.load_model("fraud", 1, trusted=DEFAULT_TRUSTED_TYPES)
    xx = np.c_[np.arange(len(y)) % 3, x] if model.n_features_in_ == 4 else x
    np.testing.assert_array_equal(loaded.predict(xx), model.predict(xx))


def test_declared_types_sees_everything_skops_flags(hgb_pipeline):
    data = sio.dumps(hgb_pipeline)
    found = declared_types(data)
    assert set(sio.get_untrusted_types(data=data)) <= found
    assert "sklearn.pipeline.Pipeline" in found
    assert not any(t.startswith("builtins.dict") for t in found)  # plain data needs no trust


def test_flipped_byte_is_refused(tmp_path, logreg, make_registry):
    reg = make_registry(tmp_path)
    mv = _register(reg, logreg)
    raw = bytearray(mv.artifact_path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    mv.artifact_path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactIntegrityError, match="sha256") as err:
        reg.load_model("fraud", 1, trusted=DEFAULT_TRUSTED_TYPES)
    assert mv.artifact_sha256 in str(err.value)
    report = reg.verify()
    assert not report["ok"] and report["problems"][0]["version"] == 1


def test_missing_file_is_refused(tmp_path, logreg, make_registry):
    reg = make_registry(tmp_path)
    mv = _register(reg, logreg)
    mv.artifact_path.unlink()
    with pytest.raises(ArtifactIntegrityError, match="missing"):
        reg.load_model("fraud", "latest", trusted=DEFAULT_TRUSTED_TYPES)
    assert reg.verify()["problems"][0]["kind"] == "artifact"


def test_custom_class_is_refused_at_load(tmp_path, make_registry):
    reg = make_registry(tmp_path)
    _register(reg, HomeMadeModel(2.0))
    with pytest.raises(ArtifactIntegrityError, match="HomeMadeModel"):
        reg.load_model("fraud", 1, trusted=DEFAULT_TRUSTED_TYPES)


def test_allowlist_is_the_callers_not_skops_defaults(tmp_path, tiny_xy, logreg, make_registry):
    # skops trusts SVC and LogisticRegression by default; we only trust what the caller lists.
    x, y = tiny_xy
    reg = make_registry(tmp_path)
    _register(reg, SVC().fit(x, y), name="svc")
    _register(reg, logreg, name="lr")
    with pytest.raises(ArtifactIntegrityError, match="sklearn.svm._classes.SVC"):
        reg.load_model("svc", 1, trusted=DEFAULT_TRUSTED_TYPES)
    with pytest.raises(ArtifactIntegrityError, match="LogisticRegression"):
        reg.load_model("lr", 1, trusted=[])
    svc, _ = reg.load_model("svc", 1, trusted=[*DEFAULT_TRUSTED_TYPES, "sklearn.svm._classes.SVC"])
    np.testing.assert_array_equal(svc.predict(x), SVC().fit(x, y).predict(x))


def test_trusted_must_be_a_list_of_names(tmp_path, logreg, make_registry):
    reg = make_registry(tmp_path)
    _register(reg, logreg)
    with pytest.raises(ArtifactIntegrityError, match="'trusted' parameter"):
        reg.load_model("fraud", 1, trusted="sklearn.linear_model._logistic.LogisticRegression")


def test_reference_file_is_content_addressed_and_verified(tmp_path, logreg, make_registry):
    ref = tmp_path / "reference.json"
    ref.write_text('{"amount": {"bins": [1, 2, 3]}}')
    reg = make_registry(tmp_path / "home")
    mv = reg.register("fraud", logreg, metadata={}, reference_file=ref, actor="alice")
    import hashlib

    expected = hashlib.sha256(ref.read_bytes()).hexdigest()
    assert mv.reference_sha256 == expected
    path = reg.reference_path("fraud", 1)
    assert path.name == f"{expected}.json" and path.read_bytes() == ref.read_bytes()
    ref.unlink()  # the registry keeps its own copy
    assert reg.reference_path("fraud", "latest").exists()
    path.write_text("{}")
    with pytest.raises(ArtifactIntegrityError, match="reference file"):
        reg.reference_path("fraud", 1)
