"""Metrics and evaluation of trained models."""

from .metrics import classification_metrics, cohen_kappa, confusion_matrix, log_loss

__all__ = ["classification_metrics", "cohen_kappa", "confusion_matrix", "log_loss"]
