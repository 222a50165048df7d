"""One exception hierarchy for everything the framework raises on purpose.

Each error names the config key or input field that was wrong and says how to fix
it. The CLI prints ``str(error)`` and exits with ``error.exit_code``; a traceback
is shown only for bugs (or with ``HYDRA_FULL_ERROR=1``).
"""
from __future__ import annotations


class MlopsError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with."""

    exit_code = 1

    def __init__(self, message: str, *, key: str | None = None, fix: str | None = None):
        self.key = key
        self.fix = fix
        self.message = message
        text = f"{key}: {message}" if key else message
        if fix:
            text = f"{text}. Fix: {fix}"
        super().__init__(text)


class ConfigError(MlopsError):
    """A config value is missing, of the wrong type or out of range."""

    exit_code = 2

    def under(self, prefix: str) -> "ConfigError":
        """The same error with its key prefixed by the config group (``monitoring.``)."""
        key = f"{prefix}.{self.key}" if self.key else prefix
        return type(self)(self.message, key=key, fix=self.fix)


class FeatureSpecError(ConfigError):
    """A feature spec does not compile (unknown column, bad SQL, cycle, ...)."""


class DataError(MlopsError):
    """Input data is missing, unreadable or lacks a required column."""

    exit_code = 2


class RegistryError(MlopsError):
    """A registry operation was refused (unknown version/alias, bad state)."""

    exit_code = 2


class NotFoundError(RegistryError):
    """A model, version or alias does not exist."""


class ArtifactIntegrityError(RegistryError):
    """An artefact file is missing, tampered with (sha256 mismatch) or untrusted."""


class GateFailedError(RegistryError):
    """A promotion gate refused the version."""


class IntegrityError(RegistryError):
    """Registry verification failed: broken hash chain, state without its event, a forged
    approval, a tampered or missing artefact (exit 4)."""

    exit_code = 4


class SkewError(MlopsError):
    """The model was trained on a different feature plan than the one loaded."""

    exit_code = 2


class ServingError(MlopsError):
    """The serving layer cannot answer (no model, store unreachable, ...)."""

    exit_code = 2


class ExperimentError(ConfigError):
    """An experiment definition or its data is invalid."""
