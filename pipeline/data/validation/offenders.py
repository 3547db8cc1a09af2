"""Name what made an expectation fail: files for the images table (with their sizes,
errors, copies or the files sharing their bytes), classes for the count tables."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from pipeline.data.duplicates import copy_kind


def offenders(table: str, rows: pd.DataFrame, column: str | None, kind: str,
              frame: pd.DataFrame) -> list[str]:
    """One readable line per offender among ``rows``, the failing rows of ``frame`` (the
    validated ``table``); ``column`` and ``kind`` are the failed expectation's."""
    return _BY_TABLE[table](rows, column, kind, frame)


def _image_offenders(
    rows: pd.DataFrame, column: str | None, kind: str, frame: pd.DataFrame
) -> list[str]:
    """Name files: the sizes of too small images, the error of undecodable ones, the
    paths sharing a sha256 (with their splits for leakage), the original a copy copies."""
    if column in ("duplicate_of", "leakage"):
        return [_copy_row(i, r, frame) for i, r in rows.iterrows()]
    if column in ("sha256", "sha256_splits") and kind != "expect_column_values_to_not_be_null":
        return [
            _same_file(str(sha), group, with_split=column == "sha256_splits")
            for sha, group in rows.groupby("sha256", sort=False)
        ]
    if kind == "expect_column_values_to_be_unique":
        return [
            f"{value} (listed {len(group)} times)"
            for value, group in rows.groupby(column, sort=False)
        ]
    return [_image_row(i, r, column, kind) for i, r in rows.iterrows()]


def _same_file(sha: str, group: pd.DataFrame, with_split: bool, most: int = 4) -> str:
    """One line per sha256: "a.jpg (train) = b.jpg (test)  [sha256 0123abcd4567]"."""
    names = [
        f"{_path(i, r)} ({r['split']})" if with_split else _path(i, r) for i, r in group.iterrows()
    ]
    names = list(dict.fromkeys(names))
    shown = names[:most] + ([f"{len(names) - most} more"] if len(names) > most else [])
    return " = ".join(shown) + f"  [sha256 {sha[:12]}]"


def _image_row(index: Any, row: pd.Series, column: str | None, kind: str) -> str:
    path = _path(index, row)
    if column in ("width", "height") and kind != "expect_column_values_to_not_be_null":
        return f"{path} {_show(row.get('width'))}x{_show(row.get('height'))}"
    if column == "error" or kind == "expect_column_values_to_not_be_null":
        error = row.get("error")
        return f"{path}: {error}" if _present(error) else path
    issue = row.get("issue")
    why = f": {issue}" if _present(issue) else ""
    return f"{path} ({column}={_show(row.get(column))}){why}"


def _copy_row(index: Any, row: pd.Series, frame: pd.DataFrame) -> str:
    """"b.jpg (test): near copy (distance 2) of a.jpg (train)"; "exact copy" only for the
    same bytes, as prepare says it (pipeline.data.duplicates.copy_kind)."""
    original = row.get("duplicate_of")
    if not _present(original):
        return f"{_path(index, row)} ({row.get('split')})"
    where = frame.loc[frame["path"] == original, "split"]
    split = f" ({where.iloc[0]})" if len(where) else ""
    kind = copy_kind(frame, index)
    return f"{_path(index, row)} ({row.get('split')}): {kind} of {original}{split}"


def _count_offenders(rows: pd.DataFrame, column: str | None, kind: str,
                     _: pd.DataFrame) -> list[str]:
    return [f"{r['label']}/{r['split']}: {int(r['images'])} image(s)" for _, r in rows.iterrows()]


def _total_offenders(rows: pd.DataFrame, column: str | None, kind: str,
                     frame: pd.DataFrame) -> list[str]:
    smallest = frame.loc[frame["images"].idxmin()]
    return [
        f"{r['label']}: {int(r['images'])} images, {r['ratio_to_smallest']:.1f}x "
        f"{smallest['label']} ({int(smallest['images'])})"
        for _, r in rows.sort_values("images", ascending=False).iterrows()
    ]


_BY_TABLE: dict[str, Callable[[pd.DataFrame, str | None, str, pd.DataFrame], list[str]]] = {
    "images": _image_offenders,
    "class_split_counts": _count_offenders,
    "class_totals": _total_offenders,
}


def _path(index: Any, row: pd.Series) -> str:
    path = row.get("path")
    return str(path) if _present(path) else f"(row {index}, no path)"


def _present(value: Any) -> bool:
    return not (value is None or (pd.api.types.is_scalar(value) and pd.isna(value)))


def _show(value: Any) -> str:
    """12.0 -> "12" (a column with a gap is float), missing -> "?", text as is."""
    if not _present(value):
        return "?"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float | int) and float(value).is_integer():
        return str(int(value))
    return str(value)
