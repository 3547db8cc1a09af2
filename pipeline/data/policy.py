"""What stays in the manifest: ``data.images.bad`` and ``data.images.duplicates``.

Nothing here writes, moves or deletes a user's file: "dropping" an image means
leaving it out of the manifest with the reason recorded in data/dropped.csv.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from pipeline.data.duplicates import copy_kind, mark_copies
from pipeline.data.images import CANNOT_READ
from pipeline.data.source_errors import DataSourceError


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
    # A file that cannot be read is left out under every policy: validate could not see it.
    unread = rejected & frame["issue"].fillna("").astype(str).str.startswith(CANNOT_READ)
    left_out = rejected if bad == "quarantine" else unread
    reasons[left_out] = "quarantined: " + frame.loc[left_out, "issue"].astype(str)
    if duplicates == "drop":
        split_of = dict(zip(frame["path"], frame.get("split", pd.Series("", index=frame.index)),
                            strict=True))
        for label in frame.index[frame["duplicate_of"] != ""]:
            original = frame.at[label, "duplicate_of"]
            split, first = str(split_of[frame.at[label, "path"]]), str(split_of[original])
            kind = copy_kind(frame, label)
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
        for label in kept.index[kept["duplicate_of"] != ""]:
            r = kept.loc[label]
            rule = "leakage across splits" if r["leakage"] else "copy within a split"
            lines.append(f"{r['path']}: {copy_kind(kept, label)} of {r['duplicate_of']} ({rule})")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def unreadable_rows(unreadable: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Folders inside class folders that cannot be listed (pipeline.data.scan), as rows of
    data/dropped.csv: they are left out by name under every policy."""
    return pd.DataFrame([{"path": p, "label": label, "split": "", "reason": f"quarantined: {why}"}
                         for p, label, why in unreadable],
                        columns=["path", "label", "split", "reason"])


def check_unread_classes(kept: pd.DataFrame, dropped: pd.DataFrame) -> None:
    """DataSourceError when every image of a class was left out because it cannot be read:
    a class quietly gone is worse than a stop naming the files."""
    unread = dropped[dropped["reason"].str.startswith(f"quarantined: {CANNOT_READ}")]
    have = set(kept["label"])
    for label, rows in unread.groupby("label"):
        if label not in have:
            files = ", ".join(rows["path"].head(3)) + (", ..." if len(rows) > 3 else "")
            why = rows["reason"].iloc[0].split(": ", 2)[-1]
            raise DataSourceError(
                f"data.source: no image of class {label!r} can be read ({files}: {why}); fix "
                "the permissions (chmod -R u+rX): leaving them out would remove the class")
