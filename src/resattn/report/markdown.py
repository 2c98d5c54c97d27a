"""Small helpers for Markdown reports."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from ..io import atomic_write_bytes


def fmt(value, digits: int = 4) -> str:
    """Numbers rounded for a table; None as a dash."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def new_figure(figsize: tuple[float, float]):
    """A matplotlib figure drawn by Agg without pyplot, so the caller's backend is left alone
    and nothing needs closing."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig, path: Path) -> Path:
    """Save a matplotlib figure as PNG atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    atomic_write_bytes(Path(path), buf.getvalue())
    return Path(path)
