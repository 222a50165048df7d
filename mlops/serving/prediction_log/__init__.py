"""The prediction log: every answered prediction, durable before it is answered.

- :mod:`.log`: :class:`PredictionLog` (group-committed journal, background compaction)
  and the readers every consumer uses (:func:`scan_prediction_log`, :func:`model_score`);
- :mod:`.journal`: the write-ahead journal's segments and records;
- :mod:`.compaction`: journal segments into parquet parts, crash recovery, quarantine.
"""
from mlops.serving.prediction_log.log import (
    BASE_SCHEMA,
    PredictionLog,
    count_log_files,
    feature_schema,
    model_score,
    scan_prediction_log,
)

__all__ = ["BASE_SCHEMA", "PredictionLog", "count_log_files", "feature_schema", "model_score",
           "scan_prediction_log"]
