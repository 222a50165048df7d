"""Redis backend of the online store (``serving.store.type=redis``).

Layout under the namespace prefix ``ns``:

- ``{ns}:ev:{entity}``: sorted set of events, score = event time (us), member =
  ``"{seq}|{payload}"`` where ``seq`` comes from ``INCR {ns}:seq`` so equal events stay
  distinct and insertion order is kept;
- ``{ns}:feat`` / ``{ns}:pred``: hashes ``entity -> "{time_us}|{payload}"``;
- ``{ns}:meta``: hash of metadata strings.

Batch reads are one pipelined round trip; bulk writes are pipelined in chunks.
"""
from __future__ import annotations

from mlops.errors import ServingError
from mlops.serving.online_store import OnlineStore, _times

_PIPE_CHUNK = 5000


class RedisStore(OnlineStore):
    """Online store on a Redis server (``redis`` python package)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "mlops",
                 socket_timeout: float = 2.0):
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the environment
            raise ServingError("the redis online store needs the 'redis' package",
                               key="serving.store.type", fix="pip install redis") from None
        self.url = url
        self.namespace = namespace
        self._redis = redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                           socket_connect_timeout=socket_timeout,
                                           decode_responses=True)
        self._error = redis.RedisError

    def _key(self, kind: str, entity: str | None = None) -> str:
        return f"{self.namespace}:{kind}" if entity is None else f"{self.namespace}:{kind}:{entity}"

    def append_events(self, entities, ts_us, payloads) -> None:
        n = len(entities)
        if n == 0:
            return
        last = self._redis.incrby(self._key("seq"), n)
        pipe = self._redis.pipeline(transaction=False)
        for i, (e, t, p) in enumerate(zip(entities, ts_us, payloads, strict=True)):
            pipe.zadd(self._key("ev", e), {f"{last - n + i + 1:016d}|{p}": int(t)})
        pipe.execute()

    def read_events(self, entities, since_us):
        uniq = list(dict.fromkeys(entities))
        pipe = self._redis.pipeline(transaction=False)
        for e in uniq:
            pipe.zrangebyscore(self._key("ev", e), int(since_us), "+inf", withscores=True)
        out = []
        for e, members in zip(uniq, pipe.execute()):
            # members come by score then member; the member starts with the sequence
            # number, so sorting by it restores insertion order within the entity
            for member, score in sorted(members, key=lambda m: m[0]):
                out.append((e, int(score), member.split("|", 1)[1]))
        return out

    def prune_events(self, before_us: int) -> int:
        removed = 0
        pipe = self._redis.pipeline(transaction=False)
        for key in self._redis.scan_iter(match=self._key("ev", "*"), count=1000):
            pipe.zremrangebyscore(key, "-inf", f"({int(before_us)}")
        for n in pipe.execute():
            removed += int(n)
        return removed

    def _hset_bulk(self, kind: str, entities, times, payloads) -> None:
        key = self._key(kind)
        items = [(e, f"{t}|{p}") for e, t, p in zip(entities, times, payloads, strict=True)]
        pipe = self._redis.pipeline(transaction=False)
        for i in range(0, len(items), _PIPE_CHUNK):
            pipe.hset(key, mapping=dict(items[i:i + _PIPE_CHUNK]))
        pipe.execute()

    def _hget_bulk(self, kind: str, entities) -> dict[str, tuple[int, str]]:
        uniq = list(dict.fromkeys(entities))
        if not uniq:
            return {}
        values = self._redis.hmget(self._key(kind), uniq)
        out = {}
        for e, v in zip(uniq, values):
            if v is not None:
                t, p = v.split("|", 1)
                out[e] = (int(t), p)
        return out

    def write_features(self, entities, as_of_us, payloads) -> None:
        self._hset_bulk("feat", entities, _times(as_of_us, len(entities), "as_of"), payloads)

    def read_features(self, entities):
        return self._hget_bulk("feat", entities)

    def write_predictions(self, entities, scored_at_us, payloads) -> None:
        self._hset_bulk("pred", entities, _times(scored_at_us, len(entities), "scored_at"),
                        payloads)

    def read_predictions(self, entities):
        return self._hget_bulk("pred", entities)

    def set_meta(self, key, value) -> None:
        self._redis.hset(self._key("meta"), key, value)

    def get_meta(self, key):
        return self._redis.hget(self._key("meta"), key)

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except self._error:
            return False

    def close(self) -> None:
        self._redis.close()

    def describe(self) -> dict:
        # the URL may carry a password: show only host/port/db
        kw = self._redis.connection_pool.connection_kwargs
        return {"type": "redis", "host": kw.get("host"), "port": kw.get("port"),
                "db": kw.get("db"), "namespace": self.namespace}
