"""Scores of a model on the held-out test split.

Computed from the confusion counts in NumPy, as scikit-learn's ``accuracy_score``,
``f1_score(average="macro", zero_division=0)``, ``top_k_accuracy_score`` and
``precision_recall_fscore_support(zero_division=0)`` define them: importing
``sklearn.metrics`` costs more than the head's whole evaluation, which runs once per head
experiment. tests/test_evaluation.py checks them against scikit-learn's on made data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is (``zero_division=0``)."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator != 0)


def _prf(y_true: np.ndarray, y_pred: np.ndarray, classes: int
         ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall, F1 and support of each class (scikit-learn's formulas: F1 =
    2 tp / (2 tp + fn + fp), 0 where undefined)."""
    counts = np.bincount(np.asarray(y_true) * classes + np.asarray(y_pred),
                         minlength=classes * classes).reshape(classes, classes)
    tp = np.diag(counts)
    true_sum, pred_sum = counts.sum(axis=1), counts.sum(axis=0)
    return (_divide(tp, pred_sum), _divide(tp, true_sum),
            _divide(2.0 * tp, true_sum + pred_sum), true_sum)


def top_k_accuracy(y_true: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Share of images whose class is among the ``k`` highest probabilities; ties broken
    towards the higher class index, as scikit-learn's stable sort, reversed, does."""
    ranked = np.argsort(proba, axis=1, kind="mergesort")[:, ::-1][:, :k]
    return float((ranked == np.asarray(y_true)[:, None]).any(axis=1).mean())


def score(y_true: np.ndarray, proba: np.ndarray, classes: list[str], top_k: int) -> dict:
    """Accuracy, macro-F1 and top-k accuracy (only when k < classes)."""
    y_pred = proba.argmax(axis=1)
    _, _, f1, _ = _prf(y_true, y_pred, len(classes))
    out = {
        "accuracy": round(float(np.mean(y_pred == np.asarray(y_true))), 4),
        "macro_f1": round(float(f1.mean()), 4),
    }
    if top_k < len(classes):
        out[f"top_{top_k}_accuracy"] = round(top_k_accuracy(y_true, proba, top_k), 4)
    return out


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class: a plot, not a metric, so the
    number of metrics `dvc exp show` compares does not grow with the classes."""
    precision, recall, f1, support = _prf(y_true, y_pred, len(classes))
    return pd.DataFrame({
        "class": classes,
        "precision": np.round(precision, 4),
        "recall": np.round(recall, 4),
        "f1": np.round(f1, 4),
        "support": support.astype(int),
    })
