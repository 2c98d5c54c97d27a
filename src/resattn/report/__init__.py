"""Reports a person reads: Markdown tables and matplotlib figures, written atomically."""

from .markdown import fmt, markdown_table, new_figure, save_figure

__all__ = ["fmt", "markdown_table", "new_figure", "save_figure"]
