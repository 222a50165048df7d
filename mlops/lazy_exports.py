"""Package attributes imported on first use, so importing a package stays cheap.

A package lists its public names and the submodule holding each; ``module_getattr`` makes
the package's ``__getattr__`` (PEP 562) that imports the submodule when a name is first read.

>>> getattr_ = module_getattr("mlops", {"ConfigError": "errors"})
>>> getattr_("ConfigError").__name__
'ConfigError'
"""
from __future__ import annotations

import importlib
from typing import Callable


def module_getattr(package: str, exports: dict[str, str]) -> Callable[[str], object]:
    """The ``__getattr__`` of ``package``: ``exports`` maps a name to its submodule."""
    def __getattr__(name: str) -> object:
        if name in exports:
            return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return __getattr__
