"""What an image model takes: size, colour mode, resize rule, normalisation, class names.

``ImageContract.transform`` turns one image into model input exactly as
:class:`resattn.data.ImageDataset` reads a training image (mode conversion, PIL bilinear
resize, pixel / 255).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..data.images import fit_image, unit_tensor
from ..errors import ConfigError, DataError
from . import _fields

IMAGE_MODES = {"L": 1, "RGB": 3}  # PIL mode -> channels
IMAGE_NORMALISATIONS = ("unit",)  # pixel / 255, values in [0, 1]
IMAGE_RESIZES = ("bilinear",)  # PIL bilinear, antialiased when shrinking


@dataclass(frozen=True, kw_only=True)
class ImageContract:
    """Input of an image model: ``(C, H, W)`` float32 in [0, 1], ``C`` 1 for mode ``L``
    (gray) and 3 for ``RGB``. ``size`` is ``(H, W)``; every image is converted to ``mode`` and
    resized to ``size`` by ``resize``; ``class_names`` one per model output."""

    size: tuple[int, int]
    mode: str
    class_names: tuple[str, ...]
    normalisation: str = "unit"
    resize: str = "bilinear"

    def __post_init__(self) -> None:
        try:
            h, w = self.size
        except (TypeError, ValueError):
            raise ConfigError(f"contract field 'size' must be (height, width), got "
                              f"{self.size!r}") from None
        _fields.one_of("mode", self.mode, tuple(IMAGE_MODES))
        _fields.one_of("normalisation", self.normalisation, IMAGE_NORMALISATIONS)
        _fields.one_of("resize", self.resize, IMAGE_RESIZES)
        size = (_fields.positive_int("size", h), _fields.positive_int("size", w))
        object.__setattr__(self, "size", size)  # frozen: normalise types once, here
        object.__setattr__(self, "class_names", _fields.class_names(self.class_names))

    @property
    def channels(self) -> int:
        """Input channels of the model: 1 for ``L``, 3 for ``RGB``."""
        return IMAGE_MODES[self.mode]

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One model input's shape (channels, *size)."""
        return (self.channels, *self.size)

    # ------------------------------------------------------------------ JSON and text
    def to_json(self) -> dict:
        """Fields plus ``channels`` (derived; checked against ``mode`` when read back)."""
        return {"kind": "image", "size": list(self.size), "mode": self.mode,
                "channels": self.channels, "normalisation": self.normalisation,
                "resize": self.resize, "class_names": list(self.class_names)}

    @classmethod
    def from_json(cls, d: dict) -> ImageContract:
        return _fields.from_json(cls, "image", d, derived=("channels",))

    def describe(self) -> str:
        """One line for model cards and ``--help``."""
        colour = "gray" if self.mode == "L" else "colour"
        return (f"{self.size[0]}x{self.size[1]} (HxW) {colour} image (mode {self.mode}, "
                f"{self.channels} channel{'s' * (self.channels > 1)}), PIL {self.resize} resize,"
                f" pixel / 255; {_fields.names_text(self.class_names)}")

    # ------------------------------------------------------------------ raw image -> input
    def transform(self, img: Image.Image | np.ndarray, where: str = "input") -> torch.Tensor:
        """One image (PIL, or uint8 ``(H, W)`` / ``(H, W, C)`` with C 1, 3 or 4) -> model
        input ``(C, H, W)`` float32 in [0, 1]."""
        return unit_tensor(fit_image(_as_pil(img, where), self.mode, self.size))


def _as_pil(img: Image.Image | np.ndarray, where: str) -> Image.Image:
    if isinstance(img, Image.Image):
        return img
    a = np.asarray(img)
    if a.dtype != np.uint8 or not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 3, 4))):
        raise DataError(f"{where}: array of shape {a.shape} and dtype {a.dtype}; expected uint8 "
                        "(H, W) or (H, W, C) with C = 1, 3 or 4")
    return Image.fromarray(a[:, :, 0] if a.ndim == 3 and a.shape[2] == 1 else a)
