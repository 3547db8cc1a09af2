"""The test images a model gets wrong, as a picture: thumbnail, true -> predicted, confidence.

A thumbnail may be replaced by an overlay (the saliency map of pipeline.evaluation.saliency
over the image as the model saw it), and the title says what the overlays show.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.core.contact_sheets import Tile, save_png, sheet

COLUMNS = 8


def shown_mistakes(table: pd.DataFrame, most: int) -> pd.DataFrame:
    """The misclassified rows a sheet shows: the ``most`` most confident."""
    wrong = table[~table["correct"]].sort_values(["confidence", "path"],
                                                 ascending=[False, True], kind="stable")
    return wrong.head(most)


def draw_mistakes(table: pd.DataFrame, root: Path, model: str, path: str | Path,
                  most: int, overlays: Mapping[str, np.ndarray] | None = None,
                  note: str = "", exif_orientation: bool = True) -> int:
    """Save a sheet of up to ``most`` misclassified images, most confident first, one row
    per true class; return how many the model got wrong in all. ``overlays`` (by path)
    replace thumbnails; ``note`` ends the title (what the overlays show, or why none);
    ``exif_orientation``: the decode the model was trained on (its card), the files drawn so."""
    overlays = overlays or {}
    wrong = table[~table["correct"]]
    shown = shown_mistakes(table, most)
    rows = []
    for label, group in shown.groupby("label", sort=True):
        tiles = [Tile(overlays.get(r.path, root / r.path),
                      f"-> {r.predicted} ({r.confidence:.0%})", exif_orientation)
                 for r in group.itertuples()]
        rows.append((f"true: {label}", tiles))
    extra = f", {len(shown)} most confident shown" if len(wrong) > len(shown) else ""
    title = (f"{model}: {len(wrong)} of {len(table)} test images wrong{extra}"
             if len(wrong) else f"{model}: every one of {len(table)} test images right")
    if note and len(wrong):
        title += f"; {note}"
    save_png(sheet(rows, COLUMNS, title), path)
    return len(wrong)
