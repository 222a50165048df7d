"""The served model: scores and labels (:mod:`.scoring`), the known categories of its
encoders, and its compiled equivalent for small batches (:mod:`.compiled`)."""
from mlops.serving.model.compiled import CompiledModel, compile_model
from mlops.serving.model.scoring import known_categories, predict_scores

__all__ = ["CompiledModel", "compile_model", "known_categories", "predict_scores"]
