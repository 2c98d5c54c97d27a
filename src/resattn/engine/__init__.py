"""Training, inference, checkpoints and run-time choices (precision, seeds, provenance)."""

from .checkpoint import load_model, save_model
from .inference import predict_proba
from .precision import choose_precision, cpu_info
from .provenance import environment, seed_everything
from .trainer import FitResult, TrainConfig, fit

__all__ = [
    "FitResult",
    "TrainConfig",
    "choose_precision",
    "cpu_info",
    "environment",
    "fit",
    "load_model",
    "predict_proba",
    "save_model",
    "seed_everything",
]
