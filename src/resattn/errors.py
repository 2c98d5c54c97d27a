"""User-facing errors: one clear message naming the file, the field and what was expected."""

from __future__ import annotations


class ResattnError(Exception):
    """Base class for mistakes in a user's input; the CLI prints the message and exits non-zero."""


class DataError(ResattnError):
    """A data file is missing, unreadable or does not hold what is expected."""


class ConfigError(ResattnError):
    """An option, model name or configuration value is invalid."""


class CheckpointError(ResattnError):
    """A checkpoint is missing, corrupt or does not match the model it is loaded into."""


class TrainingDiverged(ResattnError):
    """The training loss became NaN or infinite: the options (learning rate, precision) are
    the likely cause, not the code."""
