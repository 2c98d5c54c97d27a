"""Temporarily switching a module's train/eval mode, restoring every submodule's own flag."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import nn


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Run the block with ``model`` in eval mode (``model.eval()``, so a module's own ``train``
    override, e.g. a frozen backbone's, still applies); afterwards every submodule gets back
    the training flag it had before, even if the block raised or changed some of them."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
