"""The ``mlops`` command (same as ``python run.py``) and ``mlops init``.

``mlops [overrides] [-m]`` composes the built-in configs with the project's own
``./conf`` in front (or ``--config-dir DIR``), then runs the configured action,
exactly like ``python run.py``. ``mlops init [DIR]`` writes a starter project.
"""
from __future__ import annotations

import sys
from pathlib import Path

from mlops.project.searchpath import BUILTIN_CONF, use_project_conf


def _take_config_dir(argv: list[str]) -> tuple[Path | None, list[str]]:
    """Remove ``--config-dir DIR`` / ``-cd DIR`` / ``--config-dir=DIR`` from argv."""
    rest, found = [], None
    it = iter(argv)
    for arg in it:
        if arg in ("--config-dir", "-cd"):
            found = next(it, None)
            if found is None:
                sys.exit("error: --config-dir needs a directory")
        elif arg.startswith("--config-dir="):
            found = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return (Path(found) if found else None), rest


def hydra_main(argv: list[str] | None = None):
    """Compose and run like ``python run.py``; the project conf goes first on the search path."""
    import hydra
    from omegaconf import DictConfig

    from mlops.config import register

    argv = list(sys.argv[1:] if argv is None else argv)
    conf_dir, argv = _take_config_dir(argv)
    if conf_dir is not None and not conf_dir.is_dir():
        sys.stderr.write(f"error: --config-dir: {conf_dir} is not a directory. "
                         "Fix: point it at your project's conf/ folder\n")
        sys.exit(2)
    if conf_dir is None and (Path.cwd() / "conf").is_dir():
        conf_dir = Path.cwd() / "conf"
    _check_limits(conf_dir, argv)
    if conf_dir is not None:
        use_project_conf(conf_dir)
    register()
    sys.argv = [sys.argv[0], *argv]

    @hydra.main(version_base="1.3", config_path=str(BUILTIN_CONF), config_name="config")
    def _main(cfg: DictConfig) -> float | None:
        from mlops.app import run
        return run(cfg)

    return _main()


def _check_limits(conf_dir: Path | None, argv: list[str]) -> None:
    """A project's YAML and the overrides are checked before Hydra composes them (an
    alias bomb or deep nesting would cost minutes, memory or a RecursionError first)."""
    from mlops.config.yaml_limits import check_config_dir, check_overrides
    from mlops.errors import ConfigError
    try:
        check_overrides(argv)
        if conf_dir is not None:
            check_config_dir(conf_dir)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        sys.exit(exc.exit_code)


def main(argv: list[str] | None = None):
    """Console entry point: ``mlops init [DIR]`` or a Hydra run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["init"]:
        from mlops.project.init import main as init_main
        return init_main(argv[1:])
    return hydra_main(argv)
