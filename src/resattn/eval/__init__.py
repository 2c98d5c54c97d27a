"""Metrics, uncertainty and calibration of trained models."""

from .metrics import classification_metrics, cohen_kappa, confusion_matrix, log_loss
from .uncertainty import (
    calibration_bins,
    expected_calibration_error,
    mc_dropout_predict,
    predictive_entropy,
    reliability_diagram,
)

__all__ = [
    "calibration_bins",
    "classification_metrics",
    "cohen_kappa",
    "confusion_matrix",
    "expected_calibration_error",
    "log_loss",
    "mc_dropout_predict",
    "predictive_entropy",
    "reliability_diagram",
]
