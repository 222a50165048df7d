"""mlops: a declarative MLOps framework (features, registry, serving, monitoring, experiments)."""
__version__ = "0.1.0"
