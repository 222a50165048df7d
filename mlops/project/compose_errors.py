"""Hydra, OmegaConf and YAML errors met while composing a config, as one line.

Hydra prints its own composition errors over several lines (the search path, every
option, ``full_key:``/``object_type=`` lines) and a YAML syntax error as a traceback.
The ``mlops`` command turns each into one line that names the key or file and the fix:

>>> from hydra.errors import MissingConfigException
>>> one_line(MissingConfigException("In 'config': Could not find 'model/nope'",
...                                 options=["hgb", "logreg", "model_schema"]))
"In 'config': Could not find 'model/nope'; options: hgb, logreg. Fix: pick one, or add the file to your project's conf/"
"""
from __future__ import annotations

import os
from pathlib import Path

_NOISE = ("full_key:", "object_type=", "reference_type=", "Config search path:", "provider=",
          "Available options", "Set the environment variable HYDRA_FULL_ERROR")


def is_compose_error(exc: BaseException) -> bool:
    """Errors of the config itself (Hydra, OmegaConf, YAML), never of our code."""
    import yaml
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    return isinstance(exc, (HydraException, OmegaConfBaseException, yaml.YAMLError))


def _yaml_line(exc) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = ""
    if mark is not None:
        name = Path(mark.name)
        try:
            name = name.resolve().relative_to(Path.cwd())
        except ValueError:
            pass
        where = f"{name} line {mark.line + 1}: "
    what = ", ".join(str(p) for p in (getattr(exc, "context", None),
                                      getattr(exc, "problem", None)) if p) or str(exc)
    return f"{where}invalid YAML ({what}). Fix: correct the YAML syntax there"


def _lines(exc: BaseException) -> list[str]:
    return [line.strip() for line in str(exc).splitlines()
            if line.strip() and not line.strip().startswith(_NOISE)
            and not line.startswith("\t")]


def _appendable(exc: BaseException) -> bool:
    """Hydra's ``+key=value`` hint helps only for a plain dict; a schema refuses new keys too."""
    cause = exc.__cause__
    return cause is None or "object_type=dict" in str(cause)


def one_line(exc: BaseException) -> str:
    """``exc`` (a composition error) as one line naming the key or file and the fix."""
    import yaml
    from hydra.errors import MissingConfigException
    root = exc
    while root.__cause__ is not None and not isinstance(root, yaml.YAMLError):
        root = root.__cause__
    if isinstance(root, yaml.YAMLError):
        return _yaml_line(root)
    lines = [line for line in _lines(exc)
             if _appendable(exc) or not line.startswith("To append to your config")]
    if isinstance(exc, MissingConfigException) and exc.options:
        options = [o for o in exc.options if not o.endswith("_schema")]
        return (f"{'; '.join(lines)}; options: {', '.join(options)}. "
                "Fix: pick one, or add the file to your project's conf/")
    if exc.__cause__ is not None:
        lines += _lines(exc.__cause__)
    text = "; ".join(dict.fromkeys(line.rstrip(".") for line in lines))
    return text.replace(os.linesep, " ") + _fix(text)


def _fix(text: str) -> str:
    if "Fix:" in text:
        return ""
    if text.startswith("Could not override") and "To append" not in text:
        return ". Fix: check the key's spelling; `mlops --cfg job` prints every key"
    if text.startswith("Error merging override"):
        return ". Fix: give a value of the key's type (`mlops --cfg job` shows the current one)"
    return ""
