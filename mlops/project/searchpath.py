"""Put a user's project ``conf/`` in front of the built-in configs.

Hydra appends ``--config-dir`` and ``hydra.searchpath`` *after* the primary config
directory, so a user's ``conf/model/logreg.yaml`` could never replace the built-in
one. A search-path plugin, registered in-process by :func:`use_project_conf`,
inserts the project's directories before Hydra's ``main`` entry instead: the user's
groups extend the built-in ones and, where names collide, override them.
Launchers that pickle the config loader (joblib, Ray) carry the resulting path.
"""
from __future__ import annotations

from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

from mlops.package_files import BUILTIN_CONF

_PROJECT_DIRS: list[Path] = []


class ProjectSearchPath(SearchPathPlugin):
    """Prepends the registered project conf directories (first one wins)."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        for directory in reversed(_PROJECT_DIRS):
            search_path.prepend(provider="mlops-project", path=f"file://{directory}",
                                anchor="main")


def use_project_conf(directory: str | Path) -> Path | None:
    """Register ``directory`` (a project's ``conf/``) ahead of the built-in configs.

    The built-in ``conf/`` itself is never registered twice. Returns the resolved
    directory, or None when it is the built-in one.

    >>> use_project_conf(BUILTIN_CONF) is None
    True
    """
    path = Path(directory).expanduser().resolve()
    if path == BUILTIN_CONF:
        return None
    if path not in _PROJECT_DIRS:
        _PROJECT_DIRS.append(path)
    Plugins.instance().register(ProjectSearchPath)
    return path
