"""Model registry and builders. Importing this package registers every model."""

from . import baselines, resnet  # noqa: F401  (registration side effects)
from .base import Classifier
from .registry import ModelEntry, create_model, list_models, model_entry, register_model
from .resnet import ABLATIONS, ResNet

__all__ = [
    "ABLATIONS",
    "Classifier",
    "ModelEntry",
    "ResNet",
    "create_model",
    "list_models",
    "model_entry",
    "register_model",
]
