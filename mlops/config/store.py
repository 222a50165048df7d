"""Register schemas and resolvers with Hydra/OmegaConf (idempotent)."""
from __future__ import annotations

import os
import secrets
import time

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

from mlops.config.schema import SCHEMAS

_RUN_ID = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}_{os.getpid()}_{secrets.token_hex(2)}"


def register() -> None:
    """Store every schema in the ConfigStore and add the ``run_id`` resolver.

    ``${run_id:}`` is unique per process (time, pid, random), so two runs started
    in the same second never share an output directory.
    """
    cs = ConfigStore.instance()
    for (group, name), node in SCHEMAS.items():
        cs.store(group=group, name=name, node=node)
    if not OmegaConf.has_resolver("run_id"):
        OmegaConf.register_new_resolver("run_id", lambda: _RUN_ID)
