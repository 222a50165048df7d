"""Feast's side of ``bench_serving.py --only store``, in Feast's own virtualenv.

    python feast_peer.py FEATURES.parquet KEYS.json OUT.json [PASSES]

FEATURES.parquet holds one row per entity (``e``, ``event_timestamp`` and float features),
the same rows our store is given. Feast (local provider, SQLite online store, the file
offline store) registers one FeatureView over them and:

- ``materialize``: offline parquet to the online SQLite store, timed (Feast's bulk load);
- ``get_online_features`` for one entity at a time (p50, p99 over KEYS) and for 100
  entities per call (PASSES times over KEYS, as on our side), timed in this process after
  a warm-up call (imports excluded, as on our side);
- the values it returns for the first 50 keys, which must equal ours.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

os.environ.setdefault("FEAST_USAGE", "False")  # no telemetry (no network here)


def main(features_path: str, keys_path: str, out_path: str, passes: str = "1") -> int:
    warnings.filterwarnings("ignore")
    import feast
    import numpy as np
    import pandas as pd
    from feast import Entity, FeatureStore, FeatureView, Field, FileSource, ValueType
    from feast.types import Float64
    frame = pd.read_parquet(features_path)
    names = [c for c in frame.columns if c not in ("e", "event_timestamp")]
    keys = json.loads(Path(keys_path).read_text())
    repo = Path(tempfile.mkdtemp())
    (repo / "data").mkdir()
    (repo / "feature_store.yaml").write_text(
        "project: bench\nregistry: data/registry.db\nprovider: local\n"
        "online_store:\n  type: sqlite\n  path: data/online.db\n"
        "entity_key_serialization_version: 3\n")
    entity = Entity(name="entity", join_keys=["e"], value_type=ValueType.STRING)
    view = FeatureView(name="windows", entities=[entity], ttl=timedelta(days=3650), online=True,
                       schema=[Field(name=n, dtype=Float64) for n in names],
                       source=FileSource(path=features_path, timestamp_field="event_timestamp"))
    store = FeatureStore(repo_path=str(repo))
    store.apply([entity, view])
    t0 = time.perf_counter()
    store.materialize(start_date=datetime(2000, 1, 1, tzinfo=timezone.utc),
                      end_date=datetime.now(timezone.utc))
    t_materialize = time.perf_counter() - t0
    refs = [f"windows:{n}" for n in names]
    store.get_online_features(features=refs, entity_rows=[{"e": keys[0]}]).to_dict()  # warm-up
    one = []
    for k in keys:
        t = time.perf_counter()
        store.get_online_features(features=refs, entity_rows=[{"e": k}]).to_dict()
        one.append(time.perf_counter() - t)
    hundred = []
    for i in list(range(0, len(keys) - 99, 100)) * int(passes):
        t = time.perf_counter()
        store.get_online_features(features=refs, entity_rows=[{"e": k} for k in keys[i:i + 100]]).to_dict()
        hundred.append(time.perf_counter() - t)
    got = store.get_online_features(features=refs, entity_rows=[{"e": k} for k in keys[:50]]).to_dict()
    Path(out_path).write_text(json.dumps({
        "version": feast.__version__, "materialize_s": t_materialize, "rows": len(frame),
        "one_p50_ms": float(np.percentile(one, 50) * 1e3), "one_p99_ms": float(np.percentile(one, 99) * 1e3),
        "hundred_p50_ms": float(np.percentile(hundred, 50) * 1e3),
        "values": {n: got[n] for n in names}, "keys": got["e"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
