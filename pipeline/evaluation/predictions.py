"""Per-image test predictions: what each model said about each test image.

One CSV per model, rows in the test split's manifest order, so two models' files
line up image by image: the paired comparison of the report (McNemar's test on the
same images) and the gallery of mistakes both read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.io import atomic_path

COLUMNS = ["path", "label", "predicted", "confidence", "correct"]
# After temperature scaling (pipeline.evaluation.calibration); same argmax, so the same
# prediction. Optional: older files and callers without a temperature have none.
CALIBRATED = "confidence_calibrated"


def frame(paths: np.ndarray, y_true: np.ndarray, proba: np.ndarray, classes: list[str],
          calibrated: np.ndarray | None = None) -> pd.DataFrame:
    """The predictions table: true and predicted class names, the predicted probability
    (and, given ``calibrated`` probabilities, the calibrated one)."""
    names = np.asarray(classes)
    y_pred = proba.argmax(axis=1)
    rows = np.arange(len(y_pred))
    table = pd.DataFrame({
        "path": np.asarray(paths, dtype=str),
        "label": names[y_true],
        "predicted": names[y_pred],
        "confidence": np.round(proba[rows, y_pred].astype(float), 4),
        "correct": y_pred == y_true,
    })
    if calibrated is not None:
        table[CALIBRATED] = np.round(calibrated[rows, y_pred].astype(float), 4)
    return table


def write(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        table[COLUMNS + [c for c in (CALIBRATED,) if c in table]].to_csv(tmp, index=False)


def read(path: str | Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"path": str, "label": str, "predicted": str},
                        keep_default_na=False)
    table["correct"] = table["correct"].astype(str).str.lower() == "true"
    return table
