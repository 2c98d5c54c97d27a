"""Model registry and builders. Importing this package registers every model."""

from . import arn_cnn, baselines, densenet1d, fusion, resnet  # noqa: F401  (registration)
from .arn_cnn import ARN_ABLATIONS, ARNCNN
from .base import Classifier, HiddenHeadClassifier, RecordsOptions
from .densenet1d import DenseClassifier, DenseNet1D, fuse_features
from .fusion import FPNResNet, HFFSENet, MMFFNet
from .registry import (
    ModelEntry,
    config_of,
    create_model,
    list_models,
    model_entry,
    register_config,
    register_model,
    resolve_config,
)
from .resnet import ABLATIONS, ResNet

__all__ = [
    "ABLATIONS",
    "ARNCNN",
    "ARN_ABLATIONS",
    "Classifier",
    "DenseClassifier",
    "DenseNet1D",
    "FPNResNet",
    "HFFSENet",
    "HiddenHeadClassifier",
    "MMFFNet",
    "ModelEntry",
    "RecordsOptions",
    "ResNet",
    "config_of",
    "create_model",
    "fuse_features",
    "list_models",
    "model_entry",
    "register_config",
    "register_model",
    "resolve_config",
]
