"""Scores of a model on the held-out test split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)


def score(y_true: np.ndarray, proba: np.ndarray, classes: list[str], top_k: int) -> dict:
    """Accuracy, macro-F1, top-k (only when k < classes) and per-class precision/recall."""
    labels = np.arange(len(classes))
    y_pred = proba.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    out = {
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=labels, average="macro",
                                         zero_division=0)), 4),
    }
    if top_k < len(classes):
        out[f"top_{top_k}_accuracy"] = round(
            float(top_k_accuracy_score(y_true, proba, k=top_k, labels=labels)), 4
        )
    out["test_images"] = int(len(y_true))
    out["per_class"] = {
        name: {
            "precision": round(float(precision[i]), 4),
            "recall": round(float(recall[i]), 4),
            "f1": round(float(f1[i]), 4),
            "support": int(support[i]),
        }
        for i, name in enumerate(classes)
    }
    return out
