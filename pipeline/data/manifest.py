"""The manifest: one row per image of a class-folder data set, with its split.

Everything downstream reads the manifest, never the folder, so a split is decided
once, by prepare. This module owns the manifest's columns: :func:`build` makes a
frame from the scan (path, label, split) and the image checks
(pipeline.data.images: file and decode facts, the verdict), pipeline.data.duplicates
adds the copy columns, and :func:`read` reads any of them back with their types.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from pipeline.core.io import atomic_path
from pipeline.data.splits import stratified_split

FILE_COLUMNS = [
    "path", "label", "split", "width", "height", "channels", "format", "bytes", "sha256", "error",
]  # fmt: skip
# From pipeline.data.images.inspect_all: a full decode of each image, and its verdict.
IMAGE_COLUMNS = [
    "decodable", "truncated", "ext_mismatch", "mode", "bits", "orientation", "aspect", "phash",
    "issue", "action",
]  # fmt: skip
# From pipeline.data.duplicates.mark_copies: the kept original a row copies, and whether
# across splits.
COPY_COLUMNS = ["duplicate_of", "duplicate_distance", "leakage"]
COLUMNS = FILE_COLUMNS + IMAGE_COLUMNS + COPY_COLUMNS
DROPPED_COLUMNS = [*COLUMNS, "reason"]  # data/dropped.csv
TEXT_COLUMNS = (
    "path", "label", "split", "format", "sha256", "error", "mode", "phash", "issue", "action",
    "duplicate_of", "reason",
)  # fmt: skip
# orientation: the EXIF Orientation applied (1-8, 1 = none); width and height are after it.
INT_COLUMNS = ("width", "height", "channels", "bits", "bytes", "orientation", "duplicate_distance")
FLOAT_COLUMNS = ("aspect",)
BOOL_COLUMNS = ("decodable", "truncated", "ext_mismatch", "leakage")


def build(images: list[tuple[str, str]], splits: list[str], inspected: pd.DataFrame,
          fractions: dict[str, float] | None = None, seed: int = 0) -> pd.DataFrame:
    """One row per ``(path, label)`` of ``images``, in that order: the ``splits`` given
    (by split folders), else a seeded stratified one over ``fractions``, else "" (prepare
    draws it once copies are left out), and the columns of
    :func:`pipeline.data.images.inspect_all` (``inspected``, one row per path).

    ``channels`` comes from the mode (none for a file that cannot be opened), and
    ``error`` is the issue of a file that does not decode ("" otherwise).
    """
    rels = [rel for rel, _ in images]
    labels = [label for _, label in images]
    facts = inspected.set_index("path").reindex(rels)
    frame = pd.DataFrame({
        "path": rels,
        "label": labels,
        "split": list(splits) if splits else stratified_split(labels, fractions, seed)
        if fractions else [""] * len(rels),
    })
    for col in facts.columns:
        frame[col] = facts[col].to_numpy()
    for col in BOOL_COLUMNS:
        if col in frame:
            frame[col] = frame[col].fillna(False).astype(bool)
    for col in ("width", "height", "bits", "bytes", "orientation"):
        frame[col] = facts[col].astype("Int64").array  # nullable: a gap stays a gap
    frame["aspect"] = facts["aspect"].astype("float64").to_numpy()
    frame["format"] = frame["format"].fillna("")
    frame["channels"] = pd.array(
        [Image.getmodebands(m) if m else pd.NA for m in frame["mode"].fillna("")], dtype="Int64",
    )
    frame["error"] = frame["issue"].where(~frame["decodable"], "").fillna("")
    return frame[FILE_COLUMNS + IMAGE_COLUMNS]


def read(path: str | Path) -> pd.DataFrame:
    """Read a manifest (or dropped.csv) written by :func:`write`, each column typed.

    Text stays text (a class named ``0`` or ``NA``, a phash of digits), and only an
    empty field counts as missing in number and flag columns.
    """
    frame = pd.read_csv(
        path,
        dtype={c: str for c in TEXT_COLUMNS},
        keep_default_na=False,
        na_values={c: [""] for c in (*INT_COLUMNS, *FLOAT_COLUMNS, *BOOL_COLUMNS, "bytes")},
    )
    for col in INT_COLUMNS:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    for col in FLOAT_COLUMNS:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    for col in BOOL_COLUMNS:
        if col in frame:
            frame[col] = as_bool(frame[col])
    return frame


_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


def as_bool(column: pd.Series) -> pd.Series:
    """True/False as written by pandas (any case, or 1/0); bool, or "boolean" with gaps."""
    if column.dtype == bool:
        return column

    def one(value):
        if isinstance(value, bool):
            return value
        text = "" if value is None or (isinstance(value, float) and np.isnan(value)) \
            else str(value).strip().lower()
        return True if text in _TRUE else False if text in _FALSE else pd.NA

    values = column.map(one)
    return values.astype("boolean") if values.isna().any() else values.astype(bool)


def classes(manifest: pd.DataFrame) -> list[str]:
    """Class names in index order: sorted, as Keras' directory loaders do."""
    return sorted(manifest["label"].unique().tolist())


def write(manifest: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path, suffix=".csv") as tmp:
        manifest.to_csv(tmp, index=False)
