"""The three splits: their names, the folder names that give them, and the stratified split."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the source stage reads SPLIT_FOLDERS on every repro: no NumPy or pandas
    import pandas as pd

SPLITS: tuple[str, ...] = ("train", "val", "test")
# Folder names a pre-split data set may use for each split, in SPLITS order.
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "validation"),
    "test": ("test",),
}


def stratified_split(
    labels: list[str], fractions: dict[str, float], seed: int
) -> list[str]:
    """Assign each item a split, per class, with a seeded shuffle.

    Counts are rounded per class with the remainder going to train, so every
    split gets an image of a class as soon as the class has enough of them;
    the validate stage checks the minimum.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    out = [""] * len(labels)
    by_class: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_class.setdefault(label, []).append(i)
    for label in sorted(by_class):
        idx = np.array(by_class[label])
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_val = int(round(n * fractions["val"]))
        n_test = int(round(n * fractions["test"]))
        if n >= 3:  # keep one of each split where possible (of those asked for)
            n_val = max(n_val, 1) if fractions["val"] > 0 else 0
            n_test = max(n_test, 1) if fractions["test"] > 0 else 0
        n_val = min(n_val, n)
        n_test = min(n_test, n - n_val)
        for j, i in enumerate(idx):
            out[i] = "test" if j < n_test else "val" if j < n_test + n_val else "train"
    return out


def carve_val(labels: list[str], fraction: float, seed: int) -> list[str]:
    """"train" or "val" for each of a pre-split set's train images: a stratified
    validation split of ``fraction`` (``data.split.val``), when the set has no val/."""
    return stratified_split(labels, {"train": 1 - fraction, "val": fraction, "test": 0.0}, seed)


def assign_splits(frame: pd.DataFrame, fractions: dict[str, float], seed: int, *,
                  presplit: bool, carve: bool) -> pd.DataFrame:
    """``frame`` with its ``split`` drawn: a stratified split of every row, or, in a
    pre-split set (the folders gave it), a validation split carved from the train rows
    when there is no val/ folder (``carve``); the folders' split stays otherwise."""
    frame = frame.copy()
    if not presplit:
        frame["split"] = stratified_split(frame["label"].tolist(), fractions, seed)
    elif carve:
        train = frame["split"] == "train"
        frame.loc[train, "split"] = carve_val(frame.loc[train, "label"].tolist(),
                                              fractions["val"], seed)
    return frame
