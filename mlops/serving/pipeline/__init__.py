"""The request pipeline: validated requests -> one micro-batch -> one ordered list of stages.

- :mod:`.micro_batch`: concurrent requests gathered into one batch (:class:`MicroBatcher`);
- :mod:`.requests`: what the stages share (:class:`ParsedRequest`, :class:`Batch`, :class:`Outcome`);
- :mod:`.stages`: :data:`STAGES` (features -> score -> guard -> breaker -> store -> log) and
  :func:`process_batch`, then :mod:`.answers` (respond);
- :mod:`.tables`: the features as rows or a frame, read the same way by every stage;
- :mod:`.cache`: ``mode="batch"`` answers from the published prediction cache.
"""
from mlops.serving.pipeline.cache import answer_from_cache
from mlops.serving.pipeline.requests import Batch, Outcome, ParsedRequest, request_ids, retry_after
from mlops.serving.pipeline.stages import STAGES, process_batch

__all__ = ["STAGES", "Batch", "Outcome", "ParsedRequest", "answer_from_cache", "process_batch",
           "request_ids", "retry_after"]
