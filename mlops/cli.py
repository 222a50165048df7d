"""The ``mlops`` command (same as ``python run.py``) and ``mlops init``.

``mlops [overrides] [-m]`` composes the built-in configs with the project's own
``./conf`` in front (or ``--config-dir DIR``), then runs the configured action,
exactly like ``python run.py``. ``mlops init [DIR]`` writes a starter project.
``mlops --help`` and ``mlops --version`` answer without composing anything; a config
that does not compose (unknown key or option, broken YAML) is one line on stderr.
"""
from __future__ import annotations

import atexit
import gc
import os
import sys
from pathlib import Path

USAGE = """\
usage: mlops init [DIR] [--force]          write a starter project (conf/, data/)
       mlops [action=NAME] [group=option] [key=value ...] [-m]

Runs an action with the current folder's conf/ in front of the built-in configs
(same as `python run.py` in a checkout). Every run prints the report it wrote.

actions: {actions}

examples:
  mlops action=features                   point-in-time features -> features.html
  mlops action=train model=hgb            train + register -> train.html (model card)
  mlops action=serve                      HTTP /predict on 127.0.0.1:8080
  mlops -m action=train model=logreg,hgb  a sweep, with a leaderboard

options:
  -h, --help          this help
  -V, --version       the installed version
  --config-dir DIR    the project's conf/ folder (default: ./conf when it exists)
  --hydra-help        Hydra's help: the config groups and the composed config
  --cfg job           print the composed config instead of running (Hydra)
"""


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


def _usage() -> str:
    from mlops.actions.dispatch import ACTIONS
    return USAGE.format(actions=", ".join(ACTIONS))


def _compose_failed(exc: BaseException) -> None:
    """A config that does not compose: one line and exit 1 (Hydra's own errors)."""
    from mlops.project.compose_errors import one_line
    sys.stderr.write(f"error: {one_line(exc)}\n")
    sys.exit(1)


def hydra_main(argv: list[str] | None = None):
    """Compose and run like ``python run.py``; the project conf goes first on the search path."""
    # here, not at the top: `mlops --help`, `--version` and `init` answer without Hydra
    import hydra
    from omegaconf import DictConfig

    from mlops.config import register
    from mlops.filesystem import disk_full_detail
    from mlops.project.compose_errors import is_compose_error
    from mlops.project.compose_once import compose_once
    from mlops.project.searchpath import BUILTIN_CONF, use_project_conf

    _freeze_at_exit()
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
    sys.argv = [sys.argv[0], *["--help" if a == "--hydra-help" else a for a in argv]]
    # Hydra re-raises composition errors under HYDRA_FULL_ERROR=1, so we can print them as
    # one line; the task gets the user's own setting back (tracebacks only when asked).
    users_choice = os.environ.get("HYDRA_FULL_ERROR")

    @hydra.main(version_base="1.3", config_path=str(BUILTIN_CONF), config_name="config")
    def _main(cfg: DictConfig) -> float | None:
        _restore_env("HYDRA_FULL_ERROR", users_choice)
        from mlops.app import run
        return run(cfg)

    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        with compose_once():  # Hydra would compose twice (once only to read hydra.mode)
            return _main()
    except Exception as exc:
        if users_choice != "1" and disk_full_detail(exc) is not None:
            _hydra_disk_full(exc)
        if users_choice == "1" or not is_compose_error(exc):
            raise
        _compose_failed(exc)
    finally:
        _restore_env("HYDRA_FULL_ERROR", users_choice)


def _freeze_at_exit() -> None:
    """At exit, before the interpreter's last garbage collections, freeze the objects a run
    leaves: those collections would walk them all (~100,000 from Hydra, polars, numpy and
    scipy, OmegaConf's nodes in reference cycles) to free memory the process's end frees
    anyway, ~0.2 s after a drift check on a small file. atexit handlers run last-registered
    first, so those registered during the run (logging's, launchers') run before this one;
    threads are joined and stdout flushed as in any exit. What a frozen object's finalizer
    would do is lost only for objects kept alive by a reference cycle (which Python does
    not promise to finalize at exit): files still open are flushed first for that reason."""
    if _freeze not in _REGISTERED:
        atexit.register(_freeze)
        _REGISTERED.append(_freeze)


def _freeze() -> None:
    import io
    buffered = {io.TextIOWrapper: 0, io.BufferedWriter: 1, io.BufferedRandom: 1}  # text first
    open_files = [o for o in gc.get_objects() if type(o) in buffered]  # exact types: ABC checks cost ~0.1 s
    for stream in sorted(open_files, key=lambda o: buffered[type(o)]):
        try:
            if not stream.closed and stream.writable():
                stream.flush()
        except (OSError, ValueError):  # a closed pipe, a detached buffer: nothing to keep
            pass
    gc.freeze()


_REGISTERED: list = []


def _hydra_disk_full(exc: BaseException) -> None:
    """Hydra could not save its copy of the config in the run directory (the disk is
    full): remove the half-written file, say which in one line, exit 2."""
    from mlops.filesystem import disk_full_detail
    target, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "_save_config":  # hydra.core.utils._save_config(cfg, filename, output_dir)
            local = tb.tb_frame.f_locals
            target = Path(str(local.get("output_dir"))) / str(local.get("filename"))
        tb = tb.tb_next
    if target is not None:
        target.unlink(missing_ok=True)
    where = target or "the run directory (hydra.run.dir)"
    sys.stderr.write(f"error: cannot write {where}: {disk_full_detail(exc)}. Fix: free space on that "
                     "filesystem (or point hydra.run.dir at another one) and run again\n")
    sys.exit(2)


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


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
    """Console entry point: ``mlops init [DIR]``, ``--help``, ``--version`` or a Hydra run."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["init"]:
        from mlops.project.init import main as init_main
        return init_main(argv[1:])
    if any(a in ("-h", "--help") for a in argv):
        sys.stdout.write(_usage())
        return 0
    if any(a in ("-V", "--version") for a in argv):
        from mlops import __version__
        print(f"mlops {__version__}")
        return 0
    return hydra_main(argv)
