"""B-spline Kolmogorov-Arnold layer (Liu et al. 2024), written as two matrix products.

``KANLinear`` maps (B, in_features) -> (B, out_features) as

    y = SiLU(x) @ W_base^T  +  B(x) @ W_spline^T

where B(x) (B, in_features * n_basis) holds, for every input feature, the ``grid_size + order``
B-spline basis functions of the given order on a uniform grid over ``grid_range``, extended by
``order`` knots on each side (Cox-de Boor recursion, vectorised over batch and features).
Outside the extended grid every basis is zero and only the SiLU branch acts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn


def uniform_knots(grid_size: int, order: int, grid_range: Sequence[float]) -> torch.Tensor:
    """(grid_size + 2 * order + 1,) knots: ``grid_size`` intervals over grid_range, plus
    ``order`` extra intervals on each side so every point in range has a full set of bases."""
    lo, hi = float(grid_range[0]), float(grid_range[1])
    step = (hi - lo) / grid_size
    return torch.arange(-order, grid_size + order + 1, dtype=torch.float32) * step + lo


def bspline_basis(x: torch.Tensor, knots: torch.Tensor, order: int) -> torch.Tensor:
    """B-spline bases by the Cox-de Boor recursion.

    x: (B, F); knots: (F, K) per feature. Returns (B, F, K - 1 - order).
    """
    x = x.unsqueeze(-1)  # (B, F, 1)
    g = knots  # (F, K)
    bases = ((x >= g[:, :-1]) & (x < g[:, 1:])).to(x.dtype)  # order 0: (B, F, K - 1)
    for p in range(1, order + 1):
        left = (x - g[:, : -(p + 1)]) / (g[:, p:-1] - g[:, : -(p + 1)])
        right = (g[:, p + 1 :] - x) / (g[:, p + 1 :] - g[:, 1:-p])
        bases = left * bases[..., :-1] + right * bases[..., 1:]
    return bases


class KANLinear(nn.Module):
    """One KAN layer: a SiLU base branch plus a learnable B-spline on every input-output edge.

    Defaults follow ResNetKAN1D Table 1: grid size 5, spline order 3, grid range [-1, 1].
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        grid_size: int = 5,
        order: int = 3,
        grid_range: Sequence[float] = (-1.0, 1.0),
        spline_init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.grid_size, self.order = grid_size, order
        knots = uniform_knots(grid_size, order, grid_range)
        # Not a parameter: the grid is fixed, but it must follow the module to a device.
        self.register_buffer("knots", knots.expand(in_features, -1).contiguous())
        self.base_weight = nn.Parameter(torch.empty(out_features, in_features))
        self.spline_weight = nn.Parameter(torch.empty(out_features, in_features, self.n_basis))
        nn.init.kaiming_uniform_(self.base_weight, a=math.sqrt(5))
        nn.init.normal_(self.spline_weight, std=spline_init_std / grid_size)

    @property
    def n_basis(self) -> int:
        return self.grid_size + self.order

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features) -> (B, out_features), computed in float32 (splines need it)."""
        if x.shape[-1] != self.in_features:
            raise ValueError(f"KANLinear expects {self.in_features} features, got {x.shape[-1]}")
        with torch.autocast(device_type=x.device.type, enabled=False):
            x = x.float()
            base = F.linear(F.silu(x), self.base_weight)
            bases = bspline_basis(x, self.knots, self.order)  # (B, in, n_basis)
            spline = F.linear(bases.flatten(1), self.spline_weight.flatten(1))
        return base + spline

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"grid_size={self.grid_size}, order={self.order}"
        )


class KAN(nn.Sequential):
    """A stack of KANLinear layers, ``widths = [in, hidden..., out]``."""

    def __init__(self, widths: Sequence[int], **kan_kwargs) -> None:
        super().__init__(
            *(KANLinear(a, b, **kan_kwargs) for a, b in pairwise(widths))
        )
