"""Reference forecasts scored on the same weeks as the network (seed 003, Table IV, plus the
two that any forecast must beat).

* ``climatology``: the training weeks' class frequencies as probabilities (predicts the
  majority class);
* ``persistence``: last week's class;
* ``weighted_svm`` / ``weighted_tree``: scikit-learn SVC (RBF) and decision tree with
  class weights inversely proportional to class frequency, on the week's explicit features.

The scikit-learn models are refitted from the stored training matrix (``baselines.npz``, plain
arrays) whenever a run is evaluated: nothing is pickled.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def one_hot(pred: np.ndarray, num_classes: int) -> np.ndarray:
    out = np.zeros((len(pred), num_classes))
    out[np.arange(len(pred)), np.asarray(pred, dtype=int)] = 1.0
    return out


def climatology(train_labels: np.ndarray, n: int, num_classes: int) -> np.ndarray:
    freq = np.bincount(train_labels, minlength=num_classes).astype(float)
    return np.tile(freq / freq.sum(), (n, 1))


def persistence(previous_labels: np.ndarray, num_classes: int) -> np.ndarray:
    return one_hot(previous_labels, num_classes)


def _sklearn():
    try:
        from sklearn.svm import SVC
        from sklearn.tree import DecisionTreeClassifier
    except ImportError:  # pragma: no cover - a declared dependency
        raise ConfigError("the weighted baselines need scikit-learn: pip install "
                          "scikit-learn") from None
    return SVC, DecisionTreeClassifier


def weighted_svm(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray,
                 num_classes: int) -> np.ndarray:
    svc, _ = _sklearn()
    model = svc(kernel="rbf", C=1.0, gamma="scale", class_weight="balanced")
    model.fit(x_train, y_train)
    return one_hot(model.predict(x), num_classes)


def weighted_tree(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, num_classes: int,
                  seed: int = 0) -> np.ndarray:
    _, tree = _sklearn()
    model = tree(class_weight="balanced", max_depth=8, min_samples_leaf=5, random_state=seed)
    model.fit(x_train, y_train)
    probs = np.zeros((len(x), num_classes))
    probs[:, model.classes_] = model.predict_proba(x)
    return probs
