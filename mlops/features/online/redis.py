"""Redis backend of the online store (``serving.store.type=redis``).

Layout under the namespace prefix ``ns``:

- ``{ns}:ev:{entity}``: sorted set of events, score = event time (us), member =
  ``"{seq}|{dkey}|{keep}|{payload}"`` where ``seq`` comes from ``INCR {ns}:seq``
  (insertion order), ``dkey`` is the sha1 of the event id (or of time and payload
  without one) and ``keep`` is ``max(event time, storage time)``, what retention reads
  (members written before it existed, ``"{seq}|{dkey}|{payload}"``, are kept by their time);
- ``{ns}:evk:{entity}``: set of the ``dkey`` of stored events: an event already there is
  not added again (a Lua script does check, add and trim to ``max_events_per_entity``
  atomically per entity);
- ``{ns}:feat``: hash ``entity -> "{time_us}|{payload}"``;
- ``{ns}:kv:{key}``: the key-value store's strings (Redis expires them itself).

Batch reads are one pipelined round trip; bulk writes are pipelined in chunks.
"""
from __future__ import annotations

import functools

from mlops.errors import ServingError, StoreUnavailableError
from mlops.features.online.store import STORE_OPERATIONS, OnlineStore, per_entity_times

_PIPE_CHUNK = 5000

# KEYS: events zset, dedupe set, sequence; ARGV: cap (0 = none), then (ts, id, keep, payload)*
_APPEND = """
local added = 0
for i = 2, #ARGV, 4 do
  local id = ARGV[i + 1]
  local dkey = redis.sha1hex(id ~= '' and ('e' .. id) or ('p' .. ARGV[i] .. '|' .. ARGV[i + 3]))
  if redis.call('SADD', KEYS[2], dkey) == 1 then
    local seq = redis.call('INCR', KEYS[3])
    redis.call('ZADD', KEYS[1], ARGV[i], string.format('%016d', seq) .. '|' .. dkey .. '|'
               .. ARGV[i + 2] .. '|' .. ARGV[i + 3])
    added = added + 1
  end
end
local cap = tonumber(ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if cap > 0 and n > cap then
  for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, n - cap - 1)) do
    redis.call('SREM', KEYS[2], string.sub(m, 18, 57))
  end
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - cap - 1)
end
return added
"""

# KEYS: events zset, dedupe set; ARGV: cutoff (us, exclusive). Candidates are the events
# dated before the cutoff; those stored since (a backfill of older data) stay
_PRUNE = """
local cutoff = tonumber(ARGV[1])
local gone = 0
for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])) do
  local keep = tonumber(string.match(string.sub(m, 59), '^(-?%d+)|'))
  if keep == nil or keep < cutoff then
    redis.call('SREM', KEYS[2], string.sub(m, 18, 57))
    redis.call('ZREM', KEYS[1], m)
    gone = gone + 1
  end
end
return gone
"""


class RedisStore(OnlineStore):
    """Online store on a Redis server (``redis`` python package)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, namespace: str = "mlops",
                 timeout_ms: float = 1000.0, max_events_per_entity: int | None = None):
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - depends on the environment
            raise ServingError("the redis online store needs the 'redis' package",
                               key="serving.store.type", fix="pip install redis") from None
        self.url = url
        self.namespace = namespace
        self.timeout_ms = float(timeout_ms)
        # one attempt within the timeout: retries with back-off turned a stopped server
        # into 2-4 s per request; the client retries on the 503 instead
        self._redis = redis.Redis.from_url(url, socket_timeout=self.timeout_ms / 1000,
                                           socket_connect_timeout=self.timeout_ms / 1000,
                                           retry=Retry(NoBackoff(), 0), decode_responses=True)
        self._error = redis.RedisError
        self._unreachable = (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError)
        self.max_events_per_entity = max_events_per_entity
        self._append = self._redis.register_script(_APPEND)
        self._prune = self._redis.register_script(_PRUNE)

    def _key(self, kind: str, entity: str | None = None) -> str:
        return f"{self.namespace}:{kind}" if entity is None else f"{self.namespace}:{kind}:{entity}"

    def append_events(self, entities, ts_us, payloads, event_ids=None, *, now_us=None) -> int:
        ids = event_ids if event_ids is not None else [None] * len(entities)
        now = None if now_us is None else int(now_us)
        by_entity: dict[str, list] = {}
        for e, t, p, i in zip(entities, ts_us, payloads, ids, strict=True):
            t = int(t)
            by_entity.setdefault(e, []).extend((t, "" if i is None else str(i),
                                                t if now is None else max(t, now), p))
        if not by_entity:
            return 0
        cap = self.max_events_per_entity or 0
        pipe = self._redis.pipeline(transaction=False)
        for e, args in by_entity.items():
            self._append(keys=[self._key("ev", e), self._key("evk", e), self._key("seq")],
                         args=[cap, *args], client=pipe)
        return sum(int(n) for n in pipe.execute())

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
                out.append((e, int(score), _payload(member)))
        return out

    def prune_events(self, before_us: int) -> int:
        keys = list(self._redis.scan_iter(match=self._key("ev", "*"), count=1000))
        pipe = self._redis.pipeline(transaction=False)
        prefix = len(self._key("ev", ""))
        for key in keys:
            self._prune(keys=[key, self._key("evk", key[prefix:])], args=[int(before_us)],
                        client=pipe)
        return sum(int(n) for n in pipe.execute()) if keys else 0

    def count_events(self, entity: str | None = None) -> int:
        """How many events are stored (for one entity, or in the namespace)."""
        if entity is not None:
            return int(self._redis.zcard(self._key("ev", entity)))
        return sum(int(self._redis.zcard(k))
                   for k in self._redis.scan_iter(match=self._key("ev", "*"), count=1000))

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
        self._hset_bulk("feat", entities, per_entity_times(as_of_us, len(entities), "as_of"), payloads)

    def read_features(self, entities):
        return self._hget_bulk("feat", entities)

    def put(self, items, *, ttl_seconds=None, only_new=False, now_us=None) -> int:
        # Redis expires the keys itself (its own clock); SET NX keeps a live value
        px = None if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        pipe = self._redis.pipeline(transaction=False)
        for k, v in items.items():
            pipe.set(self._key("kv", k), v, px=px, nx=only_new)
        return sum(1 for ok in pipe.execute() if ok)

    def get(self, keys, *, now_us=None):
        uniq = list(dict.fromkeys(keys))
        if not uniq:
            return {}
        values = self._redis.mget([self._key("kv", k) for k in uniq])
        return {k: v for k, v in zip(uniq, values) if v is not None}

    def ping(self) -> bool:
        try:
            return bool(self._redis.ping())
        except self._error:
            return False

    def close(self) -> None:
        self._redis.close()

    def unavailable(self, exc: BaseException) -> StoreUnavailableError:
        """A server that is down, slow or loading, as the 503 it answers (no password shown)."""
        where = self.describe()
        return StoreUnavailableError(
            f"the Redis online store {where['host']}:{where['port']}/{where['db']} did not answer "
            f"within {self.timeout_ms:g} ms (serving.store.timeout_ms): {type(exc).__name__}: {exc}",
            fix="retry; check that the Redis server is up and reachable")

    def describe(self) -> dict:
        # the URL may carry a password: show only host/port/db
        kw = self._redis.connection_pool.connection_kwargs
        return {"type": "redis", "host": kw.get("host"), "port": kw.get("port"),
                "db": kw.get("db"), "namespace": self.namespace}


def _payload(member: str) -> str:
    """The payload of an event member: ``seq|dkey|keep|payload`` (or, written before
    retention read ``keep``, ``seq|dkey|payload``; a JSON payload never starts with a digit)."""
    rest = member[58:]
    head, sep, tail = rest.partition("|")
    return tail if sep and head.lstrip("-").isdigit() else rest


def _answering_in_time(method):
    """A store operation whose Redis server is down, slow or loading raises
    StoreUnavailableError (a 503 with Retry-After) instead of redis' own errors."""
    @functools.wraps(method)
    def bounded(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except self._unreachable as exc:
            raise self.unavailable(exc) from exc
    return bounded


for _name in (*STORE_OPERATIONS, "count_events"):
    setattr(RedisStore, _name, _answering_in_time(getattr(RedisStore, _name)))
