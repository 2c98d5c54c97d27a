"""The surface every resattn classifier shares (as timm's): features, head, swappable classifier."""

from __future__ import annotations

import functools
import inspect

import torch
from torch import nn

from ..layers import adaptive_avg_pool_nd, create_head, xavier_init_


class RecordsOptions(nn.Module):
    """A module that remembers the options its class was called with, ``init_options``: every
    keyword with its default filled in, positional arguments by name, ``**kwargs`` flattened;
    the outermost ``__init__`` wins. A model built from its class directly, not by a registered
    function, can so still be saved: ``models.registry.config_of`` finds its registered name
    and resolved config."""

    init_options: dict

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        signature = inspect.signature(init)

        @functools.wraps(init)
        def recording_init(self, *args, **kw) -> None:
            init(self, *args, **kw)
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            options: dict = {}
            for name, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[name].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    options.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    options[name] = value
            self.init_options = options  # after init: an enclosing subclass's call overwrites

        cls.__init__ = recording_init


class Classifier(RecordsOptions):
    """Base class: a subclass builds its trunk, sets ``num_features``, then calls ``_init_head``.

    ``forward_features``: (B, C_in, *spatial) -> (B, num_features, *spatial') feature map
    (what Grad-CAM, distillation and transfer learning hook into).
    ``forward_head``: feature map -> (B, num_classes) logits, or pooled (B, num_features)
    features with ``pre_logits=True``.
    """

    dims: int
    num_features: int
    num_classes: int

    def _init_head(self, dims: int, num_features: int, num_classes: int, head: str = "linear",
                   head_hidden: int = 64, drop_rate: float = 0.0) -> None:
        self.dims, self.num_features = dims, num_features
        self.head_kind, self.head_hidden, self.drop_rate = head, head_hidden, drop_rate
        self.global_pool = adaptive_avg_pool_nd(dims)
        self.reset_classifier(num_classes)

    def reset_classifier(self, num_classes: int, head: str | None = None) -> None:
        """Replace the classifier (new, randomly initialised) for ``num_classes`` outputs."""
        self.head_kind = head or self.head_kind
        self.num_classes = num_classes
        self.head = self._init_classifier(create_head(
            self.head_kind, self.pre_logits_features, num_classes, self.head_hidden,
            self.drop_rate,
        ))
        for options in (getattr(self, "config", None), getattr(self, "init_options", None)):
            if options is not None:  # so that a saved model rebuilds with this classifier
                options.update(num_classes=num_classes, head=self.head_kind)

    @property
    def pre_logits_features(self) -> int:
        """Width of what the classifier sees (``forward_head(..., pre_logits=True)``)."""
        return self.num_features

    def _init_classifier(self, head: nn.Module) -> nn.Module:
        """Initialise a new classifier (PyTorch's default here; subclasses may override)."""
        return head

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)  # (B, num_features)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class HiddenHeadClassifier(Classifier):
    """A Classifier whose head has hidden fully connected layers ``self.fc`` between the pooling
    and the swappable last layer (timm's ``head_hidden_size``).

    ``forward_head``: (B, num_features, *spatial) -> pool -> flatten -> fc ->
    (B, head_hidden_size) pre-logits -> head -> (B, num_classes). ``reset_classifier`` replaces
    only the last layer (new, Xavier-initialised); pooling and ``fc`` are kept.
    Subclasses set ``fc`` and ``head_hidden_size`` before ``_init_head`` and may replace
    ``global_pool`` after it.
    """

    fc: nn.Module
    head_hidden_size: int

    @property
    def pre_logits_features(self) -> int:
        return self.head_hidden_size

    def _init_classifier(self, head: nn.Module) -> nn.Module:
        return xavier_init_(head)  # Keras-like Xavier weights, zero biases, as the trunk

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.fc(self.global_pool(x).flatten(1))  # (B, head_hidden_size)
        return x if pre_logits else self.head(x)
