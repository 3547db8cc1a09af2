"""The data set as pictures: sample images per class, and what prepare left out or flagged."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pipeline.core.contact_sheets import Tile, save_png, sheet
from pipeline.data.splits import SPLITS

COLUMNS = 8


def draw_samples(kept: pd.DataFrame, root: Path, path: str | Path,
                 exif_orientation: bool = True) -> None:
    """One row per class: its image counts per split and its first images (turned upright
    by their EXIF orientation as ``exif_orientation``, data.images', says)."""
    rows = []
    for label, group in kept.groupby("label", sort=True):
        counts = "/".join(str(int((group["split"] == s).sum())) for s in SPLITS)
        tiles = [Tile(root / r.path, Path(r.path).name, exif_orientation)
                 for r in group.head(COLUMNS).itertuples()]
        rows.append((f"{label} ({counts})", tiles))
    save_png(sheet(rows, COLUMNS, f"{len(kept)} images of {len(rows)} classes "
                   "(per class: train/val/test)"), path)


def _short(reason: str) -> str:
    return (reason.replace("quarantined: ", "").replace("exact duplicate", "exact copy")
            .replace("near duplicate", "near copy"))


def draw_left_out(kept: pd.DataFrame, dropped: pd.DataFrame, root: Path, path: str | Path,
                  most: int = 48, exif_orientation: bool = True) -> int:
    """Every image left out (data/dropped.csv) or kept but flagged (rejected, a copy), with
    the reason, up to ``most`` per group; return how many there are in all."""
    groups: list[tuple[str, list[Tile]]] = []
    n = 0
    if len(dropped):
        tiles = [Tile(root / r.path, _short(str(r.reason)), exif_orientation)
                 for r in dropped.itertuples()]
        groups.append((f"left out ({len(tiles)})", tiles[:most]))
        n += len(tiles)
    rejected = kept[kept["action"] == "reject"]
    if len(rejected):
        tiles = [Tile(root / r.path, str(r.issue), exif_orientation)
                 for r in rejected.itertuples()]
        groups.append((f"rejected, kept for validate to fail ({len(tiles)})", tiles[:most]))
        n += len(tiles)
    copies = kept[kept["duplicate_of"].fillna("") != ""]
    if len(copies):
        tiles = [Tile(root / r.path, f"{'leak' if r.leakage else 'copy'} of "
                      f"{Path(r.duplicate_of).name}", exif_orientation)
                 for r in copies.itertuples()]
        groups.append((f"copies, kept ({len(tiles)})", tiles[:most]))
        n += len(tiles)
    title = (f"{n} image(s) left out or flagged by prepare" if n
             else "prepare left out and flagged nothing")
    save_png(sheet(groups or [("", [])], COLUMNS, title), path)
    return n
