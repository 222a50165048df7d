"""``features.shard`` / ``features.num_shards``: the sharding both feature actions share."""
from __future__ import annotations

from mlops.actions.context import RunContext
from mlops.errors import ConfigError


def shard_options(ctx: RunContext) -> tuple[int | None, int]:
    """``features.shard`` / ``features.num_shards``, checked before any work."""
    f = ctx.cfg.features
    shard, n = f.get("shard"), f.get("num_shards", 1)
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"must be an int >= 1; got {n!r}", key="features.num_shards")
    if shard is None:
        if n > 1 and ctx.cfg.action == "features":
            raise ConfigError(f"num_shards={n} but no shard chosen", key="features.shard",
                              fix="pass features.shard=i (0 <= i < num_shards), or run "
                                  "sweep=sharded_features")
        return None, n
    if not isinstance(shard, int) or not 0 <= shard < n:
        raise ConfigError(f"must be an int in [0, num_shards={n}); got {shard!r}",
                          key="features.shard", fix="e.g. features.shard=0 features.num_shards=4")
    return shard, n
