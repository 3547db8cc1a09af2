"""What stays in the manifest: ``data.images.bad`` and ``data.images.duplicates``.

Nothing here writes, moves or deletes a user's file: "dropping" an image means
leaving it out of the manifest with the reason recorded in data/dropped.csv.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from pipeline.data.duplicates import mark_copies


def apply_policy(
    df: pd.DataFrame,
    bad: Literal["fail", "quarantine"],
    duplicates: Literal["fail", "drop"],
    near_threshold: int | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, dropped rows with a ``reason``), copies marked (pipeline.data.duplicates).

    Rejected images (``action == "reject"``) are dropped under ``quarantine``; under
    ``fail`` they stay, for the validate stage's suite to fail on, naming them; they
    are never anyone's original. ``drop`` drops the copies; ``fail`` keeps them
    (within a split the suite warns, across splits it fails).
    """
    if bad not in ("fail", "quarantine"):
        raise ValueError(f"bad must be fail or quarantine, got {bad!r}")
    if duplicates not in ("fail", "drop"):
        raise ValueError(f"duplicates must be fail or drop, got {duplicates!r}")
    rejected = df["action"] == "reject"
    frame = mark_copies(df, near_threshold, usable=~rejected)
    reasons = pd.Series("", index=frame.index, dtype=object)
    if bad == "quarantine":
        reasons[rejected] = "quarantined: " + frame.loc[rejected, "issue"].astype(str)
    if duplicates == "drop":
        split_of = dict(zip(frame["path"], frame.get("split", pd.Series("", index=frame.index)),
                            strict=True))
        for label in frame.index[frame["duplicate_of"] != ""]:
            original, dist = frame.at[label, "duplicate_of"], frame.at[label, "duplicate_distance"]
            split, first = str(split_of[frame.at[label, "path"]]), str(split_of[original])
            kind = "exact duplicate" if dist == 0 else f"near duplicate (phash distance {dist})"
            where = (f", leakage {first} -> {split}" if frame.at[label, "leakage"]
                     else f" in {split}" if split else "")
            reasons[label] = f"{kind} of {original}{where}"
    dropped_mask = reasons != ""
    kept = frame[~dropped_mask].reset_index(drop=True)
    dropped = frame[dropped_mask].assign(reason=reasons[dropped_mask]).reset_index(drop=True)
    return kept, dropped


def problems(kept: pd.DataFrame, limit: int = 20) -> list[str]:
    """One line per kept row that breaks a rule (``path: rule``), for a stage to print."""
    lines = [f"{r.path}: {r.issue}" for r in kept.itertuples() if r.action == "reject"]
    if "duplicate_of" in kept:
        for r in kept[kept["duplicate_of"] != ""].itertuples():
            what = "exact" if r.duplicate_distance == 0 else "near"
            rule = "leakage across splits" if r.leakage else "duplicate within a split"
            lines.append(f"{r.path}: {what} duplicate of {r.duplicate_of} ({rule})")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
