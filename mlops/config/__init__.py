"""Configuration: structured schemas (ConfigStore), registration, validation."""
from mlops.config.store import register

__all__ = ["register"]
