"""Classification metrics in plain numpy (shared by the trainer's report and the quantizer)."""

from __future__ import annotations

import numpy as np

from trainer.labels import LABELS


def confusion(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    n = len(LABELS)
    return np.bincount(y_true * n + y_pred, minlength=n * n).reshape(n, n)


def classification_report(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix."""
    cm = confusion(y_true, y_pred)
    tp = np.diag(cm).astype(np.float64)
    precision = np.divide(tp, cm.sum(axis=0), out=np.zeros_like(tp), where=cm.sum(axis=0) > 0)
    recall = np.divide(tp, cm.sum(axis=1), out=np.zeros_like(tp), where=cm.sum(axis=1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=precision + recall > 0)
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "per_class": {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4),
                    "f1": round(float(f), 4), "support": int(s)}
            for label, p, r, f, s in zip(LABELS, precision, recall, f1, cm.sum(axis=1))
        },
        "confusion": cm.tolist(),
    }


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates of one-vs-rest `scores` at every threshold (ties merged)."""
    order = np.argsort(-scores, kind="stable")
    pos, s = positive[order].astype(np.float64), scores[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # the end of each run of equal scores
    tp, fp = np.cumsum(pos)[last], np.cumsum(1 - pos)[last]
    return np.r_[0, fp] / max(fp[-1], 1), np.r_[0, tp] / max(tp[-1], 1)


def roc_auc(positive: np.ndarray, scores: np.ndarray) -> float:
    fpr, tpr = roc_curve(positive, scores)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
