"""Torch-only image augmentation for ``(C, H, W)`` float tensors, driven by a ``torch.Generator``.

Every transform is called as ``transform(img, generator)``; all randomness is drawn from
``generator`` (or torch's global RNG when it is None), so a seeded generator replays exactly.
:class:`AugmentedSubset` seeds one generator per item from ``(seed, epoch, index)``, which
makes an epoch reproducible whatever the number of DataLoader workers or the batch order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from resattn.errors import ConfigError

__all__ = [
    "AugmentedSubset",
    "ColorJitter",
    "Compose",
    "RandomAffine",
    "RandomHorizontalFlip",
    "RandomRotation",
    "Transform",
    "affine",
    "item_generator",
    "normalize",
]

_PADDING = ("zeros", "border", "reflection")


class Transform(Protocol):
    def __call__(
        self, img: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...


def _check_image(img: torch.Tensor) -> None:
    if img.ndim != 3 or not img.is_floating_point():
        raise ValueError(
            f"expected a float (C, H, W) image tensor, got {img.dtype} {tuple(img.shape)}"
        )


def _uniform(lo: float, hi: float, generator: torch.Generator | None) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=generator))


def _symmetric(
    value: float | Sequence[float], name: str, centre: float = 0.0
) -> tuple[float, float]:
    """``v`` -> ``(centre - v, centre + v)``; a pair is taken as ``(lo, hi)``."""
    lo, hi = (
        (centre - value, centre + value)
        if isinstance(value, int | float)
        else tuple(float(v) for v in value)
    )
    if not lo <= hi or (isinstance(value, int | float) and value < 0):
        raise ConfigError(
            f"{name} must be a non-negative number or a (low, high) pair, got {value!r}"
        )
    return float(lo), float(hi)


def affine(
    img: torch.Tensor,
    angle: float = 0.0,
    translate: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    padding_mode: str = "zeros",
) -> torch.Tensor:
    """Rotate ``img`` ``(C, H, W)`` by ``angle`` degrees (counter-clockwise as displayed) and
    scale it about its centre, then shift it by ``translate = (dx, dy)`` pixels (right, down).

    Bilinear ``grid_sample``; pixels from outside the image follow ``padding_mode``. Rotations
    are done in pixel units, so non-square images are not sheared.
    """
    _check_image(img)
    if padding_mode not in _PADDING:
        raise ConfigError(f"padding_mode must be one of {_PADDING}, got {padding_mode!r}")
    if scale <= 0:
        raise ConfigError(f"scale must be positive, got {scale}")
    _, h, w = img.shape
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    # affine_grid maps each output location to the input location it samples, so we build the
    # inverse of "rotate, scale, then shift". In pixel coordinates (x right, y down) the
    # inverse rotation of a counter-clockwise turn is [[cos, -sin], [sin, cos]]; conjugating
    # by D = diag(w/2, h/2) converts it to the [-1, 1] normalised coordinates of affine_grid.
    theta = torch.tensor(
        [
            [cos / scale, -sin * h / w / scale, 0.0],
            [sin * w / h / scale, cos / scale, 0.0],
        ],
        dtype=img.dtype,
    )
    shift = torch.tensor([2.0 * translate[0] / w, 2.0 * translate[1] / h], dtype=img.dtype)
    theta[:, 2] = -theta[:, :2] @ shift
    grid = F.affine_grid(theta[None], [1, *img.shape], align_corners=False)
    return F.grid_sample(
        img[None], grid, mode="bilinear", padding_mode=padding_mode, align_corners=False
    )[0]


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"flip probability must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(img)
        return img.flip(-1) if float(torch.rand((), generator=generator)) < self.p else img

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomAffine:
    """Random :func:`affine`: angle ~ U(``degrees``), scale ~ U(``scale``), and a shift of up to
    ``translate = (fx, fy)`` of the width and height in each direction.

    ``degrees=d`` means U(-d, d). The identity draw is returned unchanged (no resampling blur).
    """

    def __init__(
        self,
        degrees: float | Sequence[float] = 0.0,
        translate: tuple[float, float] | None = None,
        scale: tuple[float, float] | None = None,
        padding_mode: str = "zeros",
    ) -> None:
        self.degrees = _symmetric(degrees, "degrees")
        self.translate = (0.0, 0.0) if translate is None else tuple(map(float, translate))
        if len(self.translate) != 2 or not all(0.0 <= t <= 1.0 for t in self.translate):
            raise ConfigError(f"translate must be two fractions in [0, 1], got {translate!r}")
        self.scale = (1.0, 1.0) if scale is None else _symmetric(scale, "scale", centre=1.0)
        if self.scale[0] <= 0:
            raise ConfigError(f"scale range must be positive, got {scale!r}")
        if padding_mode not in _PADDING:
            raise ConfigError(f"padding_mode must be one of {_PADDING}, got {padding_mode!r}")
        self.padding_mode = padding_mode

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(img)
        _, h, w = img.shape
        # Always four draws in a fixed order, so one option does not shift the others' streams.
        angle = _uniform(*self.degrees, generator)
        dx = _uniform(-self.translate[0], self.translate[0], generator) * w
        dy = _uniform(-self.translate[1], self.translate[1], generator) * h
        s = _uniform(*self.scale, generator)
        if angle == 0.0 and dx == 0.0 and dy == 0.0 and s == 1.0:
            return img
        return affine(img, angle, (dx, dy), s, self.padding_mode)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(degrees={self.degrees}, translate={self.translate}, "
            f"scale={self.scale}, padding_mode={self.padding_mode!r})"
        )


class RandomRotation(RandomAffine):
    """Rotate by an angle ~ U(-degrees, degrees) (or U(lo, hi) for a pair) about the centre."""

    def __init__(self, degrees: float | Sequence[float], padding_mode: str = "zeros") -> None:
        super().__init__(degrees=degrees, padding_mode=padding_mode)


class ColorJitter:
    """Multiply intensities by U(1 - brightness, 1 + brightness), then scale the contrast about
    the image mean by U(1 - contrast, 1 + contrast); clamp to [0, 1]."""

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0) -> None:
        self.brightness = _symmetric(brightness, "brightness", centre=1.0)
        self.contrast = _symmetric(contrast, "contrast", centre=1.0)
        if self.brightness[0] < 0 or self.contrast[0] < 0:
            raise ConfigError(
                f"brightness and contrast must be in [0, 1], got {brightness}, {contrast}"
            )

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(img)
        b = _uniform(*self.brightness, generator)
        c = _uniform(*self.contrast, generator)
        out = img * b
        mean = out.mean()
        return ((out - mean) * c + mean).clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        return f"ColorJitter(brightness={self.brightness}, contrast={self.contrast})"


class RandomErasing:
    """With probability ``p``, set a random rectangle covering U(``scale``) of the image, with
    aspect ratio in ``ratio`` (log-uniform), to ``value`` (Zhong et al. 2020)."""

    def __init__(self, p: float = 0.5, scale: tuple[float, float] = (0.02, 0.2),
                 ratio: tuple[float, float] = (0.3, 3.3), value: float = 0.0) -> None:
        if not 0 <= p <= 1 or not 0 < scale[0] <= scale[1] < 1 or not 0 < ratio[0] <= ratio[1]:
            raise ConfigError(f"RandomErasing needs p in [0, 1], 0 < scale < 1, ratio > 0; got "
                              f"{p}, {scale}, {ratio}")
        self.p, self.scale, self.ratio, self.value = p, scale, ratio, value

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(img)
        if _uniform(0.0, 1.0, generator) >= self.p:
            return img
        h, w = img.shape[-2:]
        area = _uniform(*self.scale, generator) * h * w
        aspect = math.exp(_uniform(math.log(self.ratio[0]), math.log(self.ratio[1]), generator))
        eh = max(1, min(h, round(math.sqrt(area * aspect))))
        ew = max(1, min(w, round(math.sqrt(area / aspect))))
        top = int(_uniform(0, h - eh + 1, generator))
        left = int(_uniform(0, w - ew + 1, generator))
        out = img.clone()
        out[..., top:top + eh, left:left + ew] = self.value
        return out

    def __repr__(self) -> str:
        return f"RandomErasing(p={self.p}, scale={self.scale}, ratio={self.ratio})"


def mix_batch(x: torch.Tensor, y: torch.Tensor, kind: str, alpha: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup (convex blend of two images) or CutMix (a box pasted from another image) of a
    batch with a shuffled copy: returns (mixed x, partner labels, weight of the own labels)."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample()) if alpha > 0 else 1.0
    perm = torch.randperm(len(x), generator=generator)
    if kind == "mixup":
        return lam * x + (1 - lam) * x[perm], y[perm], lam
    if kind != "cutmix":
        raise ConfigError(f"mix must be none, mixup or cutmix, got {kind!r}")
    h, w = x.shape[-2:]
    cut = math.sqrt(1 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, (1,), generator=generator)), int(
        torch.randint(w, (1,), generator=generator))
    t, b = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    left, r = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[..., t:b, left:r] = x[perm][..., t:b, left:r]
    return out, y[perm], 1 - (b - t) * (r - left) / (h * w)


class Compose:
    """Apply ``transforms`` in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            img = t(img, generator)
        return img

    def __repr__(self) -> str:
        return f"Compose({self.transforms})"


class _Normalize:
    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(-1, 1, 1)
        if not (self.std > 0).all():
            raise ConfigError(f"normalize std must be positive, got {std!r}")

    def __call__(self, img: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_image(img)
        c = img.shape[0]
        if self.mean.shape[0] not in (1, c) or self.std.shape[0] not in (1, c):
            raise ConfigError(
                f"normalize has {self.mean.shape[0]} mean / {self.std.shape[0]} std values for "
                f"an image of {c} channels; expected 1 or {c}"
            )
        return (img - self.mean) / self.std

    def __repr__(self) -> str:
        return f"normalize(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


def normalize(mean: float | Sequence[float], std: float | Sequence[float]) -> Transform:
    """Deterministic ``(img - mean) / std`` per channel (one value, or one per channel)."""
    return _Normalize(mean, std)


def item_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A torch generator seeded from ``(seed, epoch, index)`` (mixed by numpy's SeedSequence, so
    neighbouring items and epochs get unrelated streams)."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class AugmentedSubset(Dataset):
    """``dataset[indices[k]]`` with ``transform`` applied: ``(FloatTensor (C, H, W), label)``.

    Item ``k`` of epoch ``e`` uses a generator seeded by ``(seed, e, indices[k])``: the same
    image gets the same augmentation in a given epoch however it is batched or which worker
    reads it, and a new one each epoch. Call :meth:`set_epoch` before iterating each epoch;
    with ``persistent_workers=True`` workers keep the epoch they were started with.
    ``transform=None`` gives a plain subset (e.g. validation); a deterministic transform such
    as :func:`normalize` is applied the same way.
    """

    def __init__(
        self,
        dataset: Any,
        indices: Sequence[int] | np.ndarray,
        transform: Transform | None = None,
        seed: int = 0,
    ) -> None:
        if int(seed) < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {seed}")
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.transform = transform
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation stream of ``epoch``."""
        self.epoch = int(epoch)

    @property
    def labels(self) -> np.ndarray:
        """``(len(self),)`` int64 labels of the subset (for samplers and class weights)."""
        return np.asarray(self.dataset.labels, dtype=np.int64)[self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, int]:
        i = int(self.indices[k])
        img, label = self.dataset[i]
        if self.transform is not None:
            img = self.transform(img, item_generator(self.seed, self.epoch, i))
        return img, label
