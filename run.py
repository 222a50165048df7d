"""Entry point: ``python run.py [action=...] [group=option] [key=value] [-m]``.

See README.md. All logic lives in :mod:`mlops.app`.
"""
import hydra
from omegaconf import DictConfig

from mlops.config import register

register()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    from mlops.app import run
    return run(cfg)


if __name__ == "__main__":
    main()
