"""Online features: the stores serving reads at request time, materialization into them,
and request-time evaluation of the same FeaturePlan (DESIGN §2, ``features/online``).

- :mod:`.store`: the :class:`FeatureStore` (events, feature rows) and :class:`KeyValueStore`
  protocols, :class:`OnlineStore` (both) and :func:`open_store` (``sqlite``, ``redis`` or a
  dotted class path); :mod:`.sqlite` and :mod:`.redis` are the backends;
- :mod:`.codec`: store payloads <-> polars frames, vectorized;
- :mod:`.request`: realtime and hybrid features of a batch of request points;
- :mod:`.materialize`: window rows (hybrid) or events (realtime) loaded as of a time, and
  batch predictions, written into a store;
- :mod:`.events`: which records the event store keeps, by the plan's rules.

Nothing here imports :mod:`mlops.serving`: serving builds on these modules, never the
other way round.
"""
from mlops.features.online.codec import decode_rows, encode_rows, points_frame
from mlops.features.online.events import backfill_events, check_event_id, store_event_ids
from mlops.features.online.materialize import (
    MaterializeReport,
    check_materialized,
    materialize,
    publish_predictions,
    published_predictions,
)
from mlops.features.online.request import (
    HybridResult,
    append_events,
    hybrid_features,
    realtime_features,
    window_defaults,
)
from mlops.features.online.sqlite import SQLiteStore
from mlops.features.online.store import FeatureStore, KeyValueStore, OnlineStore, open_store, store_class

__all__ = [
    "FeatureStore", "HybridResult", "KeyValueStore", "MaterializeReport", "OnlineStore",
    "SQLiteStore", "append_events", "backfill_events", "check_event_id", "check_materialized",
    "decode_rows", "encode_rows", "hybrid_features", "materialize", "open_store", "points_frame",
    "publish_predictions", "published_predictions", "realtime_features", "store_class",
    "store_event_ids", "window_defaults",
]
