"""Classification metrics, all derived from one confusion matrix (rows: true, cols: predicted)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts; entry [i, j] = true class i predicted as j."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def _ratio(num: np.ndarray | float, den: np.ndarray | float) -> np.ndarray:
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_class_scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall (= sensitivity), F1 and support from a confusion matrix."""
    tp = np.diag(cm).astype(float)
    precision = _ratio(tp, cm.sum(0))
    recall = _ratio(tp, cm.sum(1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1, "support": cm.sum(1)}


def cohen_kappa(cm: np.ndarray) -> float:
    """Agreement beyond chance between truth and prediction."""
    n = cm.sum()
    if n == 0:
        return 0.0
    observed = np.trace(cm) / n
    expected = float((cm.sum(0) * cm.sum(1)).sum()) / n**2
    return float(_ratio(observed - expected, 1.0 - expected))


def log_loss(y_true: np.ndarray, probs: np.ndarray, eps: float = 1e-12) -> float:
    """Mean negative log-probability of the true class."""
    p = np.clip(probs[np.arange(len(y_true)), np.asarray(y_true, dtype=int)], eps, 1.0)
    return float(-np.log(p).mean()) if len(p) else 0.0


def classification_metrics(
    y_true: np.ndarray,
    probs: np.ndarray,
    class_names: list[str] | None = None,
    positive: int | None = None,
) -> dict:
    """Accuracy, precision, recall, F1, kappa, log loss, per-class scores and the confusion
    matrix. ``positive`` set (binary tasks): precision/recall/F1 are those of that class;
    otherwise they are macro averages. probs: (n, num_classes)."""
    probs = np.asarray(probs, dtype=float)
    y_true = np.asarray(y_true, dtype=int)
    num_classes = probs.shape[1]
    names = class_names or [str(i) for i in range(num_classes)]
    cm = confusion_matrix(y_true, probs.argmax(1), num_classes)
    scores = per_class_scores(cm)
    pick = (lambda v: float(v[positive])) if positive is not None else (lambda v: float(v.mean()))
    return {
        "n": len(y_true),
        "accuracy": float(np.trace(cm) / cm.sum()) if cm.sum() else 0.0,
        "precision": pick(scores["precision"]),
        "recall": pick(scores["recall"]),
        "f1": pick(scores["f1"]),
        "macro_f1": float(scores["f1"].mean()),
        "kappa": cohen_kappa(cm),
        "log_loss": log_loss(y_true, probs),
        "positive_class": names[positive] if positive is not None else None,
        "per_class": {
            name: {key: (int(v[i]) if key == "support" else float(v[i]))
                   for key, v in scores.items()}
            for i, name in enumerate(names)
        },
        "class_names": names,
        "confusion": cm.tolist(),
    }
