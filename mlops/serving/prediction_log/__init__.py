"""The prediction log: every answered prediction, durable before it is answered.

- :mod:`.log`: :class:`PredictionLog` (one server's group-committed journal, background
  compaction) and :func:`model_score`;
- :mod:`.fleet`: replica ids, one log directory per replica under ``serving.log_dir``,
  and the reader every consumer uses (:func:`scan_prediction_log`: every replica, each
  record once);
- :mod:`.journal`: the write-ahead journal's segments and records;
- :mod:`.compaction`: journal segments into parquet parts, crash recovery, quarantine.
"""
from mlops.serving.prediction_log.fleet import (
    REPLICA_COLUMN,
    count_log_files,
    default_replica_id,
    replica_dirs,
    replica_id_problem,
    replica_log_dir,
    scan_prediction_log,
)
from mlops.serving.prediction_log.log import (
    BASE_SCHEMA,
    PredictionLog,
    feature_schema,
    model_score,
)

__all__ = ["BASE_SCHEMA", "REPLICA_COLUMN", "PredictionLog", "count_log_files", "default_replica_id",
           "feature_schema", "model_score", "replica_dirs", "replica_id_problem", "replica_log_dir",
           "scan_prediction_log"]
