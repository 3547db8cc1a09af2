"""Per-image test predictions: what each model said about each test image.

One CSV per model, rows in the test split's manifest order, so two models' files
line up image by image: the paired comparison of the report (McNemar's test on the
same images) and the gallery of mistakes both read them.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.errors import PipelineError
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


def read(source: str | Path | io.StringIO, name: str | None = None) -> pd.DataFrame:
    """A predictions table from a file (or text: ``name`` says where it came from), checked:
    a PipelineError naming the file when it is not one (no header, a column missing, a
    ``correct`` other than true or false), never a half-read table."""
    where = name or str(source)
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:  # pandas' parser and decoding errors are ValueErrors
        said = " ".join(str(err).split()) or type(err).__name__
        raise PipelineError(f"{where}: not a predictions table ({said})") from None
    missing = [c for c in ("path", "label", "predicted", "correct") if c not in table]
    if missing:
        raise PipelineError(f"{where}: not a predictions table (no column "
                            f"{', '.join(missing)}; it has {', '.join(table.columns) or 'none'})")
    if table.empty:
        raise PipelineError(f"{where}: no rows (a predictions table has one per test image)")
    correct = table["correct"].str.strip().str.lower()
    bad = ~correct.isin(["true", "false"])
    if bad.any():
        row = int(bad.to_numpy().argmax())
        raise PipelineError(f"{where}: line {row + 2}: correct is {table['correct'][row]!r}, "
                            "not true or false")
    for column in ("confidence", CALIBRATED):
        if column in table:
            values = pd.to_numeric(table[column], errors="coerce")
            if values.isna().any():
                row = int(values.isna().to_numpy().argmax())
                raise PipelineError(f"{where}: line {row + 2}: {column} is "
                                    f"{table[column][row]!r}, not a number")
            table[column] = values
    table["correct"] = correct == "true"
    return table
