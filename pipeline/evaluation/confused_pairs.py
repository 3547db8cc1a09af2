"""Which classes a model mixes up: true -> predicted pairs by count, with example images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core.contact_sheets import Tile, save_png, sheet

TOP = 5  # pairs drawn and reported
EXAMPLES = 8  # images per pair, most confident first


def confused_pairs(table: pd.DataFrame) -> pd.DataFrame:
    """Columns label (true), predicted, count: every pair the model got wrong at least
    once, most frequent first (ties by name, so the order is stable)."""
    wrong = table[~table["correct"]]
    pairs = wrong.groupby(["label", "predicted"]).size().rename("count").reset_index()
    return pairs.sort_values(["count", "label", "predicted"], ascending=[False, True, True],
                             kind="stable").reset_index(drop=True)


def draw_confused_pairs(table: pd.DataFrame, root: Path, model: str, path: str | Path,
                        top: int = TOP, examples: int = EXAMPLES,
                        exif_orientation: bool = True) -> pd.DataFrame:
    """Save a sheet with one row per most-confused pair (its test images, most confident
    first, drawn as the model's decode turned them: ``exif_orientation``); return the pairs
    drawn."""
    pairs = confused_pairs(table).head(top)
    rows = []
    for pair in pairs.itertuples():
        wrong = table[(table["label"] == pair.label) & (table["predicted"] == pair.predicted)]
        wrong = wrong.sort_values(["confidence", "path"], ascending=[False, True],
                                  kind="stable").head(examples)
        rows.append((f"{pair.label} -> {pair.predicted} ({pair.count})",
                     [Tile(root / r.path, f"{r.confidence:.0%}", exif_orientation)
                      for r in wrong.itertuples()]))
    title = (f"{model}: the {len(pairs)} most-confused pairs (true -> predicted, count)"
             if len(pairs) else f"{model}: no test image confused")
    save_png(sheet(rows, examples, title), path)
    return pairs
