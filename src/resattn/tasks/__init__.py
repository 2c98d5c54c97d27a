"""Tasks: each a registered object (``tasks.registry``) that builds its datasets, trains,
evaluates, predicts and describes its input. Nothing outside this package asks "which task
is this?" by string."""

from __future__ import annotations

from .base import Task, TrainSpec
from .forecast import WeeklyForecast
from .images import IMAGES, ImageClassification, ImageOptions
from .registry import get_task, register_task, task_for_data, task_names, task_of
from .waveforms import WAVEFORMS, WaveformClassification, WaveformOptions

register_task(WAVEFORMS)
register_task(IMAGES)
register_task(WeeklyForecast())

__all__ = [
    "IMAGES",
    "WAVEFORMS",
    "ImageClassification",
    "ImageOptions",
    "Task",
    "TrainSpec",
    "WaveformClassification",
    "WaveformOptions",
    "WeeklyForecast",
    "get_task",
    "register_task",
    "task_for_data",
    "task_names",
    "task_of",
]
