"""Run one Hydra app and print what its task received, as JSON (for test_compose_once.py).

    python compose_probe.py WAY CONFIG_DIR CONFIG_NAME [overrides ...] [-m]

WAY: ``stock`` (a plain ``@hydra.main``, Hydra composing as it always does), ``once`` (the
same inside :func:`mlops.project.compose_once.compose_once`), ``cli`` (``mlops.cli.hydra_main``
with ``mlops.app.run`` replaced by the capture) or ``cli-stock`` (the same with
``compose_once`` replaced by a context that does nothing: the command line as it was).
CONFIG_DIR ``builtin`` is the package's conf (with its schemas registered).
Prints ``{"jobs": [{"cfg", "hydra"}...], "composed": N, "error"}``: each job's config and
Hydra config as unresolved YAML, how many times a config was composed.
"""
from __future__ import annotations

import json
import sys
from contextlib import nullcontext


def main() -> None:
    import hydra
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    from mlops.project.compose_once import compose_once

    way, config_dir, config_name, *argv = sys.argv[1:]
    if config_dir == "builtin":
        from mlops.config import register
        from mlops.project.searchpath import BUILTIN_CONF
        register()
        config_dir = str(BUILTIN_CONF)
    jobs, composed = [], []
    impl = ConfigLoaderImpl._load_configuration_impl

    def counted(self, *args, **kwargs):
        composed.append(1)
        return impl(self, *args, **kwargs)

    ConfigLoaderImpl._load_configuration_impl = counted

    def task(cfg):
        jobs.append({"cfg": OmegaConf.to_yaml(cfg), "hydra": OmegaConf.to_yaml(HydraConfig.get())})

    out = {"error": None}
    sys.argv = ["probe.py", *argv]
    try:
        if way.startswith("cli"):
            import mlops.app
            import mlops.project.compose_once
            from mlops.cli import hydra_main
            mlops.app.run = task
            if way == "cli-stock":
                mlops.project.compose_once.compose_once = nullcontext
            hydra_main(argv)
        else:
            app = hydra.main(version_base="1.3", config_path=config_dir, config_name=config_name)(task)
            with compose_once() if way == "once" else nullcontext():
                app()
    except BaseException as exc:  # noqa: BLE001 - the error is part of what is compared
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps({**out, "jobs": jobs, "composed": len(composed)}))


if __name__ == "__main__":
    main()
