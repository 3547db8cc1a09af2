"""Every model's training curves in two tables, one row per model and epoch, for the plots.

DVCLive writes one file per model and measure (dvclive/<model>/plots/metrics/{train,eval}/
<measure>.tsv); a chart comparing models would name each file in dvc.yaml, one line per
model. These tables carry the model in a column instead, so dvc.yaml's charts (templates
in .dvc/plots/) follow params.yaml's models without naming any.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.core.io import atomic_path

SPLITS = {"train": "train", "eval": "validation"}
MEASURES = ("loss", "accuracy")


def _read(path: Path, measure: str) -> pd.DataFrame:
    table = pd.read_csv(path, sep="\t")
    if not {"step", measure} <= set(table.columns):
        raise PipelineError(f"{path}: no step and {measure} columns (got {list(table.columns)})")
    return table[["step", measure]]


def curve_tables(models: list[str], live: Path = paths.LIVE
                 ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(curves, learning rates): columns model, split (train | validation), step, loss,
    accuracy; and model, step, learning_rate for the models that log one (those with a
    schedule: the head's rate is constant and not logged)."""
    curves, rates = [], []
    for model in models:
        folder = live / model / "plots" / "metrics"
        for split, label in SPLITS.items():
            files = [folder / split / f"{m}.tsv" for m in MEASURES]
            missing = [str(f) for f in files if not f.is_file()]
            if missing:
                raise PipelineError(f"model {model!r} has no training curves ({', '.join(missing)}"
                                    " missing): re-run its training stage")
            loss, accuracy = (_read(f, m) for f, m in zip(files, MEASURES, strict=True))
            table = loss.merge(accuracy, on="step", how="outer").sort_values("step")
            curves.append(table.assign(model=model, split=label))
        rate = folder / "train" / "learning_rate.tsv"
        if rate.is_file():
            rates.append(_read(rate, "learning_rate").assign(model=model))
    curves_table = pd.concat(curves, ignore_index=True)[["model", "split", "step", *MEASURES]]
    rates_table = (pd.concat(rates, ignore_index=True)[["model", "step", "learning_rate"]]
                   if rates else pd.DataFrame(columns=["model", "step", "learning_rate"]))
    return curves_table, rates_table


def write_curve_tables(models: list[str], folder: Path, live: Path = paths.LIVE) -> None:
    """curves.csv and learning_rate.csv in ``folder``, written atomically."""
    for name, table in zip(("curves.csv", "learning_rate.csv"), curve_tables(models, live),
                           strict=True):
        with atomic_path(folder / name, suffix=".csv") as tmp:
            table.to_csv(tmp, index=False)
