"""``resattn reproduce``: a paper's table as a config, run cell by cell, reported with the
published figures beside ours."""

from .config import Cell, Experiment, load_experiment
from .runner import run_experiment

__all__ = ["Cell", "Experiment", "load_experiment", "run_experiment"]
