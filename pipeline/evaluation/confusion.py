"""The confusion matrix as DVC's ``confusion`` plot templates read it: one row per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.io import atomic_path


def write_confusion(path: str | Path, y_true: np.ndarray, y_pred: np.ndarray,
                    classes: list[str]) -> None:
    """One row per test image (actual, predicted), the input of DVC's ``confusion`` template."""
    names = np.asarray(classes)
    frame = pd.DataFrame({"actual": names[y_true], "predicted": names[y_pred]})
    with atomic_path(path, suffix=".csv") as tmp:
        frame.to_csv(tmp, index=False)
