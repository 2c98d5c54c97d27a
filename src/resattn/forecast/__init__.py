"""Weekly earthquake forecasting: next-week magnitude-class labels and explicit seismological
features computed only from the events before each week (see :mod:`resattn.forecast.features`),
weekly series and their strict time split (``series``), decoupled training (``pipeline``) and
reference forecasts (``baselines``)."""

from resattn.forecast import features as _features
from resattn.forecast.features import *  # noqa: F403 - the public names of features.py

__all__ = list(_features.__all__)
