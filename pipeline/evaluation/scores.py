"""Scores of a model on the held-out test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)


def score(y_true: np.ndarray, proba: np.ndarray, classes: list[str], top_k: int) -> dict:
    """Accuracy, macro-F1 and top-k accuracy (only when k < classes)."""
    labels = np.arange(len(classes))
    y_pred = proba.argmax(axis=1)
    out = {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                         zero_division=0)), 4),
    }
    if top_k < len(classes):
        out[f"top_{top_k}_accuracy"] = round(
            float(top_k_accuracy_score(y_true, proba, k=top_k, labels=labels)), 4
        )
    return out


def per_class(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Precision, recall, F1 and support of each class: a plot, not a metric, so the
    number of metrics `dvc exp show` compares does not grow with the classes."""
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=np.arange(len(classes)), zero_division=0
    )
    return pd.DataFrame({
        "class": classes,
        "precision": np.round(precision, 4),
        "recall": np.round(recall, 4),
        "f1": np.round(f1, 4),
        "support": support.astype(int),
    })
