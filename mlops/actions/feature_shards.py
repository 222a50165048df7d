"""``features.shard`` / ``features.num_shards``: the sharding both feature actions share."""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.constraints import Interval, check
from mlops.errors import ConfigError


def shard_options(ctx: RunContext) -> tuple[int | None, int]:
    """``features.shard`` / ``features.num_shards``, checked before any work."""
    f = ctx.cfg.features
    shard, n = f.shard, f.num_shards
    check("features.num_shards", n, [Interval(int, 1, None)])
    if shard is None:
        if n > 1 and ctx.action == "features":
            raise ConfigError(f"num_shards={n} but no shard chosen", key="features.shard",
                              fix="pass features.shard=i (0 <= i < num_shards), or run "
                                  "sweep=sharded_features")
        return None, n
    check("features.shard", shard, [Interval(int, 0, n)],
          fix=f"pass features.shard=i with 0 <= i < features.num_shards ({n})")
    return shard, n
