"""The tables the suites check, derived from the manifest.

Rules that are not about single rows (leakage between splits, classes missing from
a split, class imbalance) become plain row-level rules on small derived tables, so
every failure maps back to files or classes.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from pipeline.core.params import ValidateParams
from pipeline.data import manifest as manifest_columns

TABLES = ("images", "class_split_counts", "class_totals")  # the suite YAML's keys
# Every manifest column but `error` (an absent one means no errors).
REQUIRED_COLUMNS = tuple(c for c in manifest_columns.COLUMNS if c != "error")
TEXT_COLUMNS = manifest_columns.TEXT_COLUMNS
NUMBER_COLUMNS = (*manifest_columns.INT_COLUMNS, *manifest_columns.FLOAT_COLUMNS, "bytes")
BOOL_COLUMNS = manifest_columns.BOOL_COLUMNS


def expected_classes(manifest: pd.DataFrame, validate: ValidateParams) -> list[str]:
    """The ``classes`` param, or the labels found when it is empty."""
    if validate.classes:
        return list(validate.classes)
    if "label" not in manifest:
        return []
    labels = manifest["label"].dropna().astype(str).str.strip()
    return sorted(set(labels[labels != ""]))


def build_tables(
    manifest: pd.DataFrame, classes: Sequence[str], splits: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """The frames the suites validate, keyed like the YAML's ``suites``.

    A required column that is missing stays missing in ``images`` (so the
    columns expectation names it); the derived tables are built as if it were empty.
    """
    images = normalised(manifest)
    full = images.reindex(columns=list(dict.fromkeys([*REQUIRED_COLUMNS, *images.columns])))
    images["sha256_splits"] = full.groupby("sha256")["split"].transform("nunique")

    pairs = pd.MultiIndex.from_product([list(classes), list(splits)], names=["label", "split"])
    counts = full.groupby(["label", "split"]).size().reindex(pairs, fill_value=0)
    class_split_counts = counts.rename("images").reset_index()

    totals = full.groupby("label").size().reindex(list(classes), fill_value=0)
    class_totals = totals.rename("images").rename_axis("label").reset_index()
    smallest = float(class_totals["images"].min()) if len(class_totals) else 0.0
    # An empty class gives inf for the others (flagged) and NaN for itself (skipped:
    # "every class is present in every split" already names it).
    class_totals["ratio_to_smallest"] = class_totals["images"].astype(float) / smallest
    return {
        "images": images,
        "class_split_counts": class_split_counts,
        "class_totals": class_totals,
    }


def normalised(manifest: pd.DataFrame) -> pd.DataFrame:
    """Blank text counts as missing, sizes as numbers, an absent ``error`` as none.

    DataFrames built in code and CSVs read without ``pipeline.data.manifest.read`` disagree on
    these details; the expectations should not.
    """
    frame = manifest.reset_index(drop=True).copy()
    for column in TEXT_COLUMNS:
        if column in frame:
            text = frame[column].astype("string").str.strip().replace("", pd.NA)
            frame[column] = text.astype(object).where(text.notna(), None)
    for column in NUMBER_COLUMNS:
        if column in frame:
            frame[column] = pd.to_numeric(frame[column], errors="coerce")
    for column in BOOL_COLUMNS:
        if column in frame:
            flags = manifest_columns.as_bool(frame[column]).astype(object)
            frame[column] = flags.where(flags.notna(), None)
    if "error" not in frame:
        frame["error"] = None
    return frame


def counts(frame: pd.DataFrame, column: str, first: Sequence[str] = ()) -> dict[str, int]:
    """Rows per value of ``column``: the ``first`` values in their order, then the rest."""
    if column not in frame:
        return {}
    found = frame[column].dropna().astype(str).value_counts()
    order = [k for k in first if k in found.index] + sorted(set(found.index) - set(first))
    return {key: int(found[key]) for key in order}
