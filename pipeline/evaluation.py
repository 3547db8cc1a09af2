"""Scores of a model on the held-out test split, and the comparison table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from pipeline.io import atomic_path, write_text


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


def write_confusion(path: str | Path, y_true: np.ndarray, y_pred: np.ndarray,
                    classes: list[str]) -> None:
    """One row per test image (actual, predicted), the input of DVC's ``confusion`` template."""
    names = np.asarray(classes)
    frame = pd.DataFrame({"actual": names[y_true], "predicted": names[y_pred]})
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)


TABLE_COLUMNS = [
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro_f1", "macro-F1", "{:.4f}"),
    ("trainable_params", "trainable params", "{:,}"),
    ("train_seconds", "train time (s)", "{:.1f}"),
    ("inference_images_per_second", "inference img/s", "{:.1f}"),
]


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown table of the models side by side, best accuracy first."""
    header = "| model | " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    rows = []
    for name, res in sorted(results.items(), key=lambda kv: -kv[1].get("accuracy", 0)):
        cells = [
            fmt.format(res[key]) if res.get(key) is not None else "n/a"
            for key, _, fmt in TABLE_COLUMNS
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(path: str | Path, results: dict[str, dict], test_images: int) -> str:
    table = comparison_table(results)
    write_text(path, f"# Test-split comparison ({test_images} images)\n\n{table}")
    return table
