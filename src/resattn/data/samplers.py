"""Class-balanced sampling (Kang et al. 2020, the second stage of decoupled training)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from ..errors import ConfigError


class ClassBalancedSampler(Sampler[int]):
    """Each draw picks a class uniformly, then an item of that class uniformly (with
    replacement), so every class is equally frequent in expectation however rare it is.

    ``num_samples`` per epoch defaults to the dataset size. Epoch ``e`` uses the stream seeded
    by ``(seed, e)``: call :meth:`set_epoch` for a new draw; the same epoch replays exactly.
    """

    def __init__(self, labels: Sequence[int] | np.ndarray, num_samples: int | None = None,
                 seed: int = 0) -> None:
        y = np.asarray(labels, dtype=np.int64)
        if y.ndim != 1 or len(y) == 0:
            raise ConfigError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
        self.by_class = [np.flatnonzero(y == c) for c in np.unique(y)]
        self.num_samples = len(y) if num_samples is None else int(num_samples)
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        classes = rng.integers(0, len(self.by_class), self.num_samples)
        picks = [int(self.by_class[c][rng.integers(0, len(self.by_class[c]))]) for c in classes]
        return iter(picks)
