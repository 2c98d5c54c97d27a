"""Command-line values checked while the options are parsed, before any work: an output folder
or file that cannot be written, or a number out of its range, is one error naming the flag.

Whole numbers use click's own ranges (``typer.Option(min=1)``); real numbers use ``number``,
which also refuses NaN and infinities (click's float ranges let NaN through).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import typer

from .io import writable_dir, writable_file


def _flag(param) -> str:
    return "--" + str(param.name).replace("_", "-")


def out_dir(ctx: typer.Context, param, value: Path | None) -> Path | None:
    """Typer callback of an output-folder option."""
    return value if value is None or ctx.resilient_parsing else writable_dir(value, _flag(param))


def out_file(ctx: typer.Context, param, value: Path | None) -> Path | None:
    """Typer callback of an output-file option."""
    return value if value is None or ctx.resilient_parsing else writable_file(value, _flag(param))


def number(low: float | None = None, high: float | None = None, *, low_open: bool = False,
           high_open: bool = False) -> Callable:
    """Typer callback of a real-number option: finite and within [low, high] (an end marked
    open is excluded); None (an optional option not given) passes."""
    left = "" if low is None else f"{'>' if low_open else '>='} {low:g}"
    right = "" if high is None else f"{'<' if high_open else '<='} {high:g}"
    wanted = " and ".join(p for p in (left, right) if p)

    def check(ctx: typer.Context, param, value: float | None) -> float | None:
        if value is None or ctx.resilient_parsing:
            return value
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if not math.isfinite(value) or too_low or too_high:
            raise typer.BadParameter(f"expected a finite number{' ' + wanted if wanted else ''}"
                                     f", got {value:g}")
        return value

    return check
