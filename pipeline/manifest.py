"""The manifest: one row per image of a class-folder data set, with a stratified split.

The layout is the one Keras' ``image_dataset_from_directory`` reads: one
sub-folder per class under the data root, or a pre-split data set with
``train/``, ``val/`` (or ``validation/``) and ``test/`` folders of class folders.
Everything downstream reads the manifest, never the folder, so a split is
decided once, here. This module owns the manifest's columns: :func:`build` makes
the file columns, :func:`add_inspection` adds those of the image checks
(pipeline/images.py), :func:`pipeline.images.apply_policy` the duplicate ones,
and :func:`read` reads any of them back with their types.
"""

from __future__ import annotations

import hashlib
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

FILE_COLUMNS = [
    "path", "label", "split", "width", "height", "channels", "format", "bytes", "sha256", "error",
]  # fmt: skip
# From pipeline.images.inspect_all: a full decode of each image, and the policy's verdict.
IMAGE_COLUMNS = [
    "decodable", "truncated", "ext_mismatch", "mode", "bits", "aspect", "phash", "issue", "action",
]  # fmt: skip
# From pipeline.images.apply_policy: the kept original a row copies, and whether across splits.
DUPLICATE_COLUMNS = ["duplicate_of", "duplicate_distance", "leakage"]
COLUMNS = FILE_COLUMNS + IMAGE_COLUMNS + DUPLICATE_COLUMNS
DROPPED_COLUMNS = [*COLUMNS, "reason"]  # data/dropped.csv
TEXT_COLUMNS = (
    "path", "label", "split", "format", "sha256", "error", "mode", "phash", "issue", "action",
    "duplicate_of", "reason",
)  # fmt: skip
INT_COLUMNS = ("width", "height", "channels", "bits", "duplicate_distance")
FLOAT_COLUMNS = ("aspect",)
BOOL_COLUMNS = ("decodable", "truncated", "ext_mismatch", "leakage")
SPLITS = ("train", "val", "test")
# What tf.io.decode_image reads; other formats would fail at feature extraction.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})


class DataSourceError(ValueError):
    """The data folder is missing or has no usable class folders."""


@dataclass
class Scan:
    """What a walk of the data folder found."""

    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, label)
    skipped: Counter = field(default_factory=Counter)  # reason -> count of files
    splits: list[str] = field(default_factory=list)  # per image, when split folders give it
    empty_classes: list[str] = field(default_factory=list)  # class folders without an image
    hidden_folders: dict[str, int] = field(default_factory=dict)  # ".x" folder -> files skipped
    other_folders: dict[str, int] = field(default_factory=dict)  # beside split folders -> files

    @property
    def labels(self) -> list[str]:
        return sorted({label for _, label in self.images})


def _hidden(name: str) -> bool:
    # .DS_Store, macOS resource forks (._x.jpg), editor droppings.
    return name.startswith(".")


def _count_files(path: Path) -> int:
    if not path.is_dir():
        return 1
    return sum(1 for p in path.rglob("*") if p.is_file() or p.is_symlink())


def scan(root: str | Path, presplit: Mapping[str, Path] | None = None) -> Scan:
    """List the images under ``root``'s class folders; count what is skipped and why.

    ``presplit`` (``{split: folder}``, as :func:`pipeline.sources.find_presplit`
    gives it): the class folders are inside those folders, paths keep the split
    folder (``train/cat/1.jpg``) and the folder gives each image its split; other
    folders beside them are skipped and reported by name.
    """
    root = Path(root)
    if not root.exists():
        raise DataSourceError(f"data.source: folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise DataSourceError(f"data.source: {str(root)!r} is a file, expected a folder")
    found = Scan()
    if presplit:
        split_dirs = set(presplit.values())
        for entry in sorted(root.iterdir()):
            if entry in split_dirs:
                continue
            if _hidden(entry.name):
                found.skipped["hidden"] += _count_files(entry)
            elif entry.is_dir():
                n = _count_files(entry)
                found.other_folders[entry.name] = n
                found.skipped["outside the split folders"] += n
            else:
                found.skipped["outside a class folder"] += 1
        for split, folder in presplit.items():
            _scan_classes(root, folder, found, split)
    else:
        _scan_classes(root, root, found, None)
    if not found.images:
        empty = (f"; empty class folders: {', '.join(found.empty_classes)}"
                 if found.empty_classes else "")
        raise DataSourceError(
            f"data.source: no images found in class folders under {str(root)!r} "
            f"(expected {root}/<class>/<image>{{{','.join(sorted(IMAGE_EXTENSIONS))}}})"
            + empty
        )
    return found


def _scan_classes(root: Path, base: Path, found: Scan, split: str | None) -> None:
    """Add the images of ``base``'s class folders to ``found`` (paths relative to ``root``)."""
    for entry in sorted(base.iterdir()):
        name = entry.relative_to(root).as_posix()
        if _hidden(entry.name):
            n = _count_files(entry)
            found.skipped["hidden"] += n
            if entry.is_dir():
                found.hidden_folders[name] = n
        elif entry.is_file():
            found.skipped["outside a class folder"] += 1
        elif entry.is_dir():
            before = len(found.images)
            for file in sorted(entry.rglob("*")):
                if any(_hidden(part) for part in file.relative_to(entry).parts):
                    found.skipped["hidden"] += int(file.is_file())
                elif file.is_symlink() and not file.exists():
                    found.skipped["broken symbolic link"] += 1
                elif not file.is_file():
                    continue
                elif file.suffix.lower() not in IMAGE_EXTENSIONS:
                    found.skipped["not an image"] += 1
                else:
                    found.images.append((file.relative_to(root).as_posix(), entry.name))
                    if split is not None:
                        found.splits.append(split)
            if len(found.images) == before:
                found.empty_classes.append(name)
        elif entry.is_symlink():
            found.skipped["broken symbolic link"] += 1


def check_classes(labels: Sequence[str], root: str | Path, found: Scan | None = None) -> None:
    """DataSourceError unless there are at least two classes: a classifier needs them."""
    names = sorted(set(labels))
    if len(names) >= 2:
        return
    shown = f"1 ({names[0]!r})" if names else "none"
    empty = (f"; empty class folders: {', '.join(found.empty_classes)}"
             if found and found.empty_classes else "")
    raise DataSourceError(
        f"data.source: a classifier needs at least 2 classes; found {shown} under "
        f"{str(root)!r}{empty}"
    )


def describe(root: Path, rel: str) -> dict:
    """File facts for one image: size, hash and what Pillow reads from its header."""
    path = root / rel
    data = path.read_bytes()
    row = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), "error": ""}
    try:
        with Image.open(path) as img:
            row.update(
                width=img.width, height=img.height, channels=len(img.getbands()), format=img.format
            )
    except Exception as err:  # noqa: BLE001 - any decoder failure is a data error to report
        row.update(width=None, height=None, channels=None, format="")
        # Relative path only: the manifest must not depend on where the data lives.
        row["error"] = f"{type(err).__name__}: {str(err).replace(str(path), rel)}"
    return row


def stratified_split(
    labels: list[str], fractions: dict[str, float], seed: int
) -> list[str]:
    """Assign each item a split, per class, with a seeded shuffle.

    Counts are rounded per class with the remainder going to train, so every
    split gets an image of a class as soon as the class has enough of them;
    the validate stage checks the minimum.
    """
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
        if n >= 3:  # keep one of each split where possible
            n_val, n_test = max(n_val, 1), max(n_test, 1)
        n_val = min(n_val, n)
        n_test = min(n_test, n - n_val)
        for j, i in enumerate(idx):
            out[i] = "test" if j < n_test else "val" if j < n_test + n_val else "train"
    return out


def build(
    root: str | Path,
    fractions: dict[str, float],
    seed: int,
    workers: int = 8,
    *,
    presplit: Mapping[str, Path] | None = None,
    found: Scan | None = None,
) -> tuple[pd.DataFrame, Scan]:
    """Scan ``root`` and return (manifest, what the scan found), rows in scan order.

    The split is stratified and seeded, or with ``presplit`` the split folders'.
    ``found``: the result of ``scan(root, presplit)`` when the caller already has it.
    """
    root = Path(root)
    found = found if found is not None else scan(root, presplit)
    rels = [rel for rel, _ in found.images]
    # Warning filters are process-wide: set once here, not in the threads. A bomb is
    # pipeline.images' to report (with the policy's limit), not Pillow's to print.
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        facts = list(pool.map(lambda rel: describe(root, rel), rels))  # I/O releases the GIL
    frame = pd.DataFrame(facts)
    frame.insert(0, "path", rels)
    frame.insert(1, "label", [label for _, label in found.images])
    splits = (list(found.splits) if presplit
              else stratified_split(frame["label"].tolist(), fractions, seed))
    frame.insert(2, "split", splits)
    for col in ("width", "height", "channels"):
        frame[col] = frame[col].astype("Int64")
    return frame[FILE_COLUMNS], found


def add_inspection(frame: pd.DataFrame, inspected: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (file columns) with the columns of :func:`pipeline.images.inspect_all`.

    Width, height and format come from the full decode, channels from the mode (a
    file that cannot be opened has none), and ``error`` is the issue of a file that
    does not decode ("" otherwise).
    """
    facts = inspected.set_index("path").reindex(frame["path"])
    out = frame.copy()
    for col in IMAGE_COLUMNS:
        out[col] = facts[col].to_numpy()
    for col in BOOL_COLUMNS:
        if col in out:
            out[col] = out[col].fillna(False).astype(bool)
    out["width"] = facts["width"].astype("Int64").to_numpy()
    out["height"] = facts["height"].astype("Int64").to_numpy()
    out["bits"] = facts["bits"].astype("Int64").to_numpy()
    out["aspect"] = facts["aspect"].astype("float64").to_numpy()
    out["format"] = facts["format"].fillna("").to_numpy()
    out["channels"] = pd.array(
        [Image.getmodebands(m) if m else pd.NA for m in out["mode"].fillna("")],
        dtype="Int64",
    )
    out["error"] = out["issue"].where(~out["decodable"], "").fillna("")
    return out


def summary(manifest: pd.DataFrame, found: Scan, dropped: pd.DataFrame | None = None) -> dict:
    """Counts for metrics/prepare.json."""
    per_split = manifest.groupby("split").size()
    out = {
        "images": int(len(manifest)),
        "classes": int(manifest["label"].nunique()),
        "splits": {s: int(per_split.get(s, 0)) for s in SPLITS},
        "per_class": {k: int(v) for k, v in manifest.groupby("label").size().items()},
        "unreadable": int((manifest["error"].fillna("") != "").sum()),
    }
    if "action" in manifest:
        out["rejected"] = int((manifest["action"] == "reject").sum())
        out["converted"] = int((manifest["action"] == "convert").sum())
        out["ext_mismatch"] = int(manifest["ext_mismatch"].sum())
    if "duplicate_of" in manifest:
        out["duplicates"] = int((manifest["duplicate_of"].fillna("") != "").sum())
        out["leakage"] = int(manifest["leakage"].sum())
    if dropped is not None:
        bad = dropped["reason"].str.startswith("quarantined") if len(dropped) else []
        out["dropped"] = {"bad": int(sum(bad)), "duplicates": int(len(dropped) - sum(bad))}
    out["skipped"] = {k: int(v) for k, v in sorted(found.skipped.items())}
    out["empty_classes"] = list(found.empty_classes)
    out["hidden_folders"] = dict(found.hidden_folders)
    if found.other_folders:
        out["other_folders"] = dict(found.other_folders)
    return out


def class_summary(manifest: pd.DataFrame) -> dict[str, dict]:
    """Per class: images per split, mean width and height, and the share of each mode."""
    out: dict[str, dict] = {}
    for label, rows in manifest.groupby("label", sort=True):
        entry: dict = {s: int((rows["split"] == s).sum()) for s in SPLITS}
        for side in ("width", "height"):
            mean = pd.to_numeric(rows[side], errors="coerce").mean()
            entry[f"mean_{side}"] = None if pd.isna(mean) else round(float(mean), 1)
        if "mode" in rows:
            modes = rows["mode"].fillna("").replace("", "unreadable")
            shares = modes.value_counts(normalize=True)
            entry["modes"] = {str(m): round(float(v), 3) for m, v in
                              sorted(shares.items(), key=lambda kv: (-kv[1], kv[0]))}
        out[str(label)] = entry
    return out


def format_class_table(classes: Mapping[str, Mapping]) -> str:
    """The per-class summary as a plain aligned table."""
    header = ("class", *SPLITS, "mean size", "modes")
    rows = []
    for label, e in classes.items():
        size = ("?" if e["mean_width"] is None else
                f"{e['mean_width']:g}x{e['mean_height']:g}")
        modes = ", ".join(f"{m} {share:.0%}" for m, share in e.get("modes", {}).items())
        rows.append((label, *(str(e[s]) for s in SPLITS), size, modes))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for r in [header, *rows]:
        cells = [f"{r[0]:<{widths[0]}}"] + [f"{c:>{w}}" for c, w in zip(r[1:-1], widths[1:],
                                                                          strict=True)]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    return "\n".join(lines)


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
    from pipeline.io import atomic_path

    with atomic_path(path, suffix=".csv") as tmp:
        manifest.to_csv(tmp, index=False)
