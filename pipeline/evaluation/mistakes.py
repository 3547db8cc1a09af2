"""The test images a model gets wrong, as a picture: thumbnail, true -> predicted, confidence."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core.pictures import Tile, save_png, sheet

COLUMNS = 8


def draw_mistakes(table: pd.DataFrame, root: Path, model: str, path: str | Path,
                  most: int) -> int:
    """Save a sheet of up to ``most`` misclassified images, most confident first, one row
    per true class; return how many the model got wrong in all."""
    wrong = table[~table["correct"]].sort_values(["confidence", "path"],
                                                 ascending=[False, True], kind="stable")
    shown = wrong.head(most)
    rows = []
    for label, group in shown.groupby("label", sort=True):
        tiles = [Tile(root / r.path, f"-> {r.predicted} ({r.confidence:.0%})")
                 for r in group.itertuples()]
        rows.append((f"true: {label}", tiles))
    extra = f", {len(shown)} most confident shown" if len(wrong) > len(shown) else ""
    title = (f"{model}: {len(wrong)} of {len(table)} test images wrong{extra}"
             if len(wrong) else f"{model}: every one of {len(table)} test images right")
    save_png(sheet(rows, COLUMNS, title), path)
    return len(wrong)
