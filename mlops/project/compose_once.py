"""A single run composes its config once, not twice (Hydra issue #3440).

``@hydra.main`` first composes the whole config only to read ``hydra.mode``
(``Hydra.get_mode``: multirun mode, errors swallowed), then composes it again to run
(``Hydra.run``, with ``hydra.mode=RUN`` added to the overrides when the config sets no
mode). Each composition costs ~0.2 s. While :func:`compose_once` is active:

* ``get_mode`` composes in run mode and keeps that config. When this succeeds it gives
  the same mode as Hydra's multirun-mode composition: the two modes compose differently
  only for a mandatory group left at ``???`` (skipped in multirun mode, an error in run
  mode) and in which sweep overrides they refuse (both raise, never change the result).
  With a sweep override (``a=1,2``: a multirun, or an error) or when composing fails (a
  missing group, a bad key) Hydra's own ``get_mode`` runs.
* ``Hydra.run``'s composition gets the kept config back when its arguments are the ones
  Hydra's dispatch computes from that mode: the same overrides (the config says
  ``hydra.mode: RUN``) or the same plus ``hydra.mode=RUN`` (the config sets no mode),
  which is then applied by Hydra's own override code and recorded in
  ``hydra.overrides.hydra`` as composing would. Anything else (a multirun, a config
  that sets ``hydra.mode: MULTIRUN``) composes as usual.

The kept config is used at most once. Hydra's private classes are patched only inside
the ``with`` block and restored after; with a Hydra that lacks them nothing is patched.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

RUN_OVERRIDE = "hydra.mode=RUN"


@contextmanager
def compose_once() -> Iterator[None]:
    """Patch Hydra so that ``@hydra.main`` composes a single run's config once.

    >>> with compose_once():
    ...     pass
    """
    try:
        from hydra._internal.config_loader_impl import ConfigLoaderImpl
        from hydra._internal.hydra import Hydra
    except ImportError:  # pragma: no cover - another Hydra layout: compose as usual
        yield
        return
    if not (hasattr(Hydra, "get_mode") and hasattr(ConfigLoaderImpl, "load_configuration")):
        yield  # pragma: no cover - another Hydra: compose as usual
        return
    kept: dict[str, Any] = {}
    hydra_get_mode, hydra_load = Hydra.get_mode, ConfigLoaderImpl.load_configuration

    def get_mode(self, config_name, overrides):
        kept.clear()
        if _sweeps(overrides):  # a multirun (or an error): run mode would refuse it anyway
            return hydra_get_mode(self, config_name, overrides)
        try:
            cfg = hydra_load(self.config_loader, config_name=config_name, overrides=list(overrides),
                             run_mode=_run_mode())
        except Exception:  # noqa: BLE001 - Hydra's get_mode decides (and swallows) as before
            return hydra_get_mode(self, config_name, overrides)
        kept.update(loader=self.config_loader, config_name=config_name, overrides=list(overrides), cfg=cfg)
        return cfg.hydra.mode

    def load_configuration(self, config_name, overrides, run_mode, from_shell=True,
                           validate_sweep_overrides=True):
        cfg = _reuse(kept, self, config_name, list(overrides), run_mode, from_shell and validate_sweep_overrides)
        if cfg is not None:
            return cfg
        return hydra_load(self, config_name=config_name, overrides=overrides, run_mode=run_mode,
                          from_shell=from_shell, validate_sweep_overrides=validate_sweep_overrides)

    Hydra.get_mode, ConfigLoaderImpl.load_configuration = get_mode, load_configuration
    try:
        yield
    finally:
        Hydra.get_mode, ConfigLoaderImpl.load_configuration = hydra_get_mode, hydra_load
        kept.clear()


def _run_mode():
    from hydra.types import RunMode
    return RunMode.RUN


def _sweeps(overrides: list[str]) -> bool:
    """Whether any override sweeps (``a=1,2``, ``range(3)``, ...); unparsable ones count."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    try:
        return any(o.is_sweep_override() for o in OverridesParser.create().parse_overrides(list(overrides)))
    except Exception:  # noqa: BLE001 - Hydra reports it when it composes
        return True


def _reuse(kept: dict, loader, config_name, overrides: list[str], run_mode, defaults: bool):
    """The kept config when this composition would give it again (once), else None."""
    if not kept:
        return None
    mine = dict(kept)
    kept.clear()
    if (loader is not mine["loader"] or config_name != mine["config_name"] or run_mode != _run_mode()
            or not defaults or overrides[:len(mine["overrides"])] != mine["overrides"]):
        return None
    cfg, extra = mine["cfg"], overrides[len(mine["overrides"]):]
    if not extra and cfg.hydra.mode == _run_mode():
        return cfg
    if extra == [RUN_OVERRIDE] and cfg.hydra.mode is None:
        _apply_hydra_override(cfg, RUN_OVERRIDE)
        return cfg
    return None


def _apply_hydra_override(cfg, line: str) -> None:
    """What composing with one more ``hydra.*`` override at the end does: Hydra's own
    parser and setter apply it, and it is recorded in ``hydra.overrides.hydra``."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    parsed = OverridesParser.create().parse_overrides([line])
    ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    cfg.hydra.overrides.hydra.append(line)
