"""resattn: attention-enhanced residual and dense networks for 1-D signals and 2-D images."""

from .models import create_model, list_models

__version__ = "0.1.0"
__all__ = ["__version__", "create_model", "list_models"]
