"""Weekly earthquake forecasting: next-week magnitude-class labels and explicit seismological
features computed only from the events before each week (see :mod:`resattn.forecast.features`)."""

from resattn.forecast.features import (
    DEFAULT_BOUNDS,
    DEFAULT_WINDOWS,
    FILL_VALUES,
    aki_b_value,
    class_names,
    explicit_features,
    gutenberg_richter,
    join_extra,
    magnitude_class,
    week_starts,
    weekly_labels,
)

__all__ = [
    "DEFAULT_BOUNDS",
    "DEFAULT_WINDOWS",
    "FILL_VALUES",
    "aki_b_value",
    "class_names",
    "explicit_features",
    "gutenberg_richter",
    "join_extra",
    "magnitude_class",
    "week_starts",
    "weekly_labels",
]
