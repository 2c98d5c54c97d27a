"""Command-line output paths checked while the options are parsed, before any work: a folder
or file that cannot be written is one ``error:`` line naming the flag."""

from __future__ import annotations

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
