"""Content-addressed artefact files: skops save, sha256, verified and allowlisted load.

Files live at ``<dir>/<sha256[:2]>/<sha256><suffix>``. A file is written to a temp
name in the same directory, fsynced, then ``os.replace``d into place, so a reader
never sees half a file and a killed writer leaves at worst a ``*.tmp`` orphan.

Loading trusts only what the *caller* lists. Every class, function or type reference
in the file must be in ``trusted``; plain data (dicts, lists, strings, numbers, numpy
arrays) needs no listing. The file's own declared types are never used as the list.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlops.errors import ArtifactIntegrityError
from mlops.filesystem import UnsafeFileError, naming_full_disk, read_regular
from mlops.home import private_dir

MODEL_SUFFIX = ".skops"
PARTIAL_SUFFIX = ".tmp"          # a file being written (or whose writer was killed)
SHARED_DIR_MODE = 0o2770
SHARED_FILE_MODE = 0o640

# Types found by dumping fitted estimators (binary, multiclass, regression, early
# stopping, categorical features, pipelines with ColumnTransformer) with skops and
# walking their schema; see tests/registry/test_registry_artifacts.py.
DEFAULT_TRUSTED_TYPES: tuple[str, ...] = (
    # type references and dtypes that appear as estimator parameters / fitted state
    "builtins.bool",
    "builtins.float",
    "builtins.int",
    "builtins.object",
    "builtins.str",
    "numpy.dtype",
    "numpy.bool_",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.uint8",
    "numpy.random._generator.Generator",
    "numpy.random.mtrand.RandomState",
    # composition and preprocessing
    "sklearn.pipeline.Pipeline",
    "sklearn.pipeline.FeatureUnion",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.RobustScaler",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    # linear models and baselines
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.dummy.DummyClassifier",
    "sklearn.dummy.DummyRegressor",
    # trees and forests
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.ensemble._gb.GradientBoostingClassifier",
    "sklearn.ensemble._gb.GradientBoostingRegressor",
    # histogram gradient boosting and its fitted internals
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # categorical_features: a partial of check_array is stored in the fitted model
    "functools.partial",
    "sklearn.utils.validation.check_array",
    # losses and link functions kept by gradient boosting
    "sklearn._loss._loss.CyAbsoluteError",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfMultinomialLoss",
    "sklearn._loss._loss.CyHalfPoissonLoss",
    "sklearn._loss._loss.CyHalfSquaredError",
    "sklearn._loss.link.IdentityLink",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogLink",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.MultinomialLogit",
    "sklearn._loss.loss.AbsoluteError",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfMultinomialLoss",
    "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn._loss.loss.HalfSquaredError",
)

# skops node loaders that hold plain data only (no import, no call).
_DATA_LOADERS = frozenset({"JsonNode", "DictNode", "ListNode", "TupleNode", "SetNode", "SliceNode"})


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def content_path(directory: Path, sha256: str, suffix: str) -> Path:
    """Where content with this sha256 lives: ``directory/ab/abcdef...<suffix>``."""
    return directory / sha256[:2] / f"{sha256}{suffix}"


def write_atomic(directory: Path, sha256: str, suffix: str, data: bytes, *, shared: bool = False) -> Path:
    """Write ``data`` to its content-addressed path (temp file, fsync, os.replace).

    An existing file with the right content is kept (its mtime refreshed, so a
    concurrent ``gc`` sees a young file, not an old orphan); a damaged one is replaced.
    ``shared``: a team's directory, files 0640 and new directories 2770 (group members
    read and register); otherwise private like everything under ``paths.home``.
    """
    target = content_path(directory, sha256, suffix)
    if _holds(target, sha256, len(data)):
        os.utime(target)
        return target
    with naming_full_disk(target):  # a full disk names the artefact and leaves no temp file
        for folder in (directory, target.parent):
            _shared_dir(folder) if shared else private_dir(folder)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha256[:16]}.", suffix=PARTIAL_SUFFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                if shared:
                    os.fchmod(fh.fileno(), SHARED_FILE_MODE)
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    _fsync_dir(target.parent)
    return target


def _holds(target: Path, sha256: str, size: int) -> bool:
    """``target`` is a regular file with this content (a symlink or a pipe there is not)."""
    try:
        return sha256_bytes(read_regular(target, expected_size=size)) == sha256
    except (OSError, UnsafeFileError):
        return False


def _shared_dir(path: Path) -> None:
    """Create a directory of a shared store group-writable, setgid (files keep the
    share's group); an existing one, possibly another member's, is left as it is."""
    if path.is_dir():
        return
    try:
        path.mkdir(parents=True, mode=SHARED_DIR_MODE)
    except FileExistsError:  # another machine made it first
        return
    try:
        os.chmod(path, SHARED_DIR_MODE)
    except OSError:
        pass


def _fsync_dir(directory: Path) -> None:
    # Makes the rename durable; not supported on every platform, which is fine.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def dump_model(model: Any) -> bytes:
    """Serialise ``model`` with ``skops.io.dumps``; refuses what skops cannot store safely."""
    import skops.io as sio  # loaded when a model is saved or loaded, not by every action
    try:
        return sio.dumps(model)
    except Exception as exc:  # skops raises TypeError/ValueError/... for unsupported objects
        raise ArtifactIntegrityError(
            f"cannot save a {type(model).__module__}.{type(model).__qualname__} with skops: {exc}",
            key="model",
            fix="register a scikit-learn estimator or pipeline (or another object skops supports)",
        ) from exc


def declared_types(data: bytes) -> set[str]:
    """Every class, function or type reference a skops file would import.

    Plain data nodes (dicts, lists, JSON scalars, numpy arrays) are left out.
    Raises ArtifactIntegrityError when the bytes are not a readable skops file.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ArtifactIntegrityError(f"not a readable skops file ({exc})") from exc
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, cls, loader = node.get("__module__"), node.get("__class__"), node.get("__loader__")
            if isinstance(module, str) and isinstance(cls, str):
                data_only = (module == "builtins" and loader in _DATA_LOADERS) or (
                    module == "numpy" and loader == "NdArrayNode"
                )
                if not data_only:
                    found.add(f"{module}.{cls}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def load_trusted(data: bytes, *, trusted: Sequence[str], what: str) -> Any:
    """Load skops bytes (already sha-verified) if every type they declare is in ``trusted``.

    ``what`` names the artefact in errors (e.g. ``"model 'fraud' version 3"``).
    Raises ArtifactIntegrityError on an untrusted type or a load failure; nothing is
    returned in those cases.
    """
    if isinstance(trusted, (str, bytes)) or not all(isinstance(t, str) for t in trusted):
        raise ArtifactIntegrityError(
            f"The 'trusted' parameter must be a list of dotted type names; got {trusted!r} instead",
            fix="pass mlops.registry.DEFAULT_TRUSTED_TYPES or a list like it",
        )
    allowed = set(trusted)
    try:
        untrusted = sorted(declared_types(data) - allowed)
    except ArtifactIntegrityError as exc:
        raise ArtifactIntegrityError(f"{what}: {exc}") from exc
    if untrusted:
        raise ArtifactIntegrityError(
            f"{what}: artefact contains types that are not in the trusted list: {untrusted}; "
            "refusing to load it",
            fix="if you trust this model, add these dotted names to the trusted types you pass",
        )
    try:
        # skops audits again with the same caller list, as a second line of defence.
        import skops.io as sio  # loaded when a model is loaded, not by every action
        return sio.loads(data, trusted=sorted(allowed))
    except Exception as exc:
        raise ArtifactIntegrityError(f"{what}: skops refused or failed to load the artefact: {exc}") from exc


def read_verified(path: Path, *, expected_sha256: str, what: str, expected_size: int | None = None) -> bytes:
    """Read a regular file whole and check its size (when recorded) and sha256.

    Missing, not a regular file (a symlink, FIFO or device is refused before a byte is
    read), of another size, or mismatched -> ArtifactIntegrityError naming the file.
    """
    try:
        data = read_regular(path, expected_size=expected_size)
    except FileNotFoundError as exc:
        raise ArtifactIntegrityError(
            f"{what}: artefact file {path} is missing",
            fix="restore the file from a backup, or run Registry.verify() to list every damaged version",
        ) from exc
    except UnsafeFileError as exc:
        raise ArtifactIntegrityError(f"{what}: artefact file {exc}; refusing to read it",
                                     fix="restore the file from a backup or register the model again") from exc
    except OSError as exc:
        raise ArtifactIntegrityError(f"{what}: cannot read artefact file {path}: {exc}") from exc
    actual = sha256_bytes(data)
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"{what}: file {path} has sha256 {actual} but {expected_sha256} was recorded at "
            "registration; the file was modified or corrupted, refusing to use it",
            fix="restore the file from a backup or register the model again",
        )
    return data
