"""Entry point: ``python run.py [action=...] [group=option] [key=value] [-m]``.

Same as the ``mlops`` command: a ``conf/`` folder in the working directory (or
``--config-dir DIR``) goes in front of the built-in configs. See README.md; all
logic lives in :mod:`mlops.app`.
"""
from mlops.cli import hydra_main

if __name__ == "__main__":
    hydra_main()
