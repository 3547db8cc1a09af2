"""The manifest: one row per image of a class-folder data set, with a stratified split.

The layout is the one Keras' ``image_dataset_from_directory`` reads: one
sub-folder per class under the data root. Everything downstream reads the
manifest, never the folder, so a split is decided once, here.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

COLUMNS = [
    "path", "label", "split", "width", "height", "channels", "format", "bytes", "sha256", "error",
]  # fmt: skip
SPLITS = ("train", "val", "test")
# What tf.io.decode_image reads; other formats would fail at feature extraction.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})


class DataSourceError(ValueError):
    """The data folder is missing or has no usable class folders."""


@dataclass
class Scan:
    """What a walk of the data folder found."""

    images: list[tuple[str, str]] = field(default_factory=list)  # (relative path, label)
    skipped: Counter = field(default_factory=Counter)  # reason -> count


def _hidden(name: str) -> bool:
    # .DS_Store, macOS resource forks (._x.jpg), editor droppings.
    return name.startswith(".")


def scan(root: str | Path) -> Scan:
    """List the images under ``root``'s class folders; count what is skipped and why."""
    root = Path(root)
    if not root.exists():
        raise DataSourceError(f"data.source: folder {str(root)!r} does not exist")
    if not root.is_dir():
        raise DataSourceError(f"data.source: {str(root)!r} is a file, expected a folder")
    found = Scan()
    for entry in sorted(root.iterdir()):
        if _hidden(entry.name):
            found.skipped["hidden"] += 1
        elif entry.is_file():
            found.skipped["outside a class folder"] += 1
        elif entry.is_dir():
            for file in sorted(entry.rglob("*")):
                rel = file.relative_to(root)
                if any(_hidden(part) for part in rel.parts):
                    found.skipped["hidden"] += int(file.is_file())
                elif not file.is_file():
                    continue
                elif file.suffix.lower() not in IMAGE_EXTENSIONS:
                    found.skipped["not an image"] += 1
                else:
                    found.images.append((rel.as_posix(), entry.name))
    if not found.images:
        raise DataSourceError(
            f"data.source: no images found in class folders under {str(root)!r} "
            f"(expected {root}/<class>/<image>{{{','.join(sorted(IMAGE_EXTENSIONS))}}})"
        )
    return found


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


def build(root: str | Path, fractions: dict[str, float], seed: int, workers: int = 8) -> tuple[
    pd.DataFrame, Counter
]:
    """Scan ``root`` and return (manifest, skipped counts), rows sorted by path."""
    root = Path(root)
    found = scan(root)
    rels = [rel for rel, _ in found.images]
    with ThreadPoolExecutor(max_workers=workers) as pool:  # I/O and zlib release the GIL
        facts = list(pool.map(lambda rel: describe(root, rel), rels))
    frame = pd.DataFrame(facts)
    frame.insert(0, "path", rels)
    frame.insert(1, "label", [label for _, label in found.images])
    frame.insert(2, "split", stratified_split(frame["label"].tolist(), fractions, seed))
    for col in ("width", "height", "channels"):
        frame[col] = frame[col].astype("Int64")
    return frame[COLUMNS], found.skipped


def summary(manifest: pd.DataFrame, skipped: Counter) -> dict:
    """Counts for metrics/prepare.json."""
    per_split = manifest.groupby("split").size()
    return {
        "images": int(len(manifest)),
        "classes": int(manifest["label"].nunique()),
        "splits": {s: int(per_split.get(s, 0)) for s in SPLITS},
        "per_class": {k: int(v) for k, v in manifest.groupby("label").size().items()},
        "unreadable": int((manifest["error"] != "").sum()),
        "skipped": {k: int(v) for k, v in sorted(skipped.items())},
    }


def read(path: str | Path) -> pd.DataFrame:
    """Read a manifest CSV written by :func:`write`."""
    frame = pd.read_csv(path, dtype={"label": str, "path": str}, keep_default_na=False,
                        na_values={"width": [""], "height": [""], "channels": [""]})
    for col in ("width", "height", "channels"):
        frame[col] = frame[col].astype("Int64")
    return frame


def classes(manifest: pd.DataFrame) -> list[str]:
    """Class names in index order: sorted, as Keras' directory loaders do."""
    return sorted(manifest["label"].unique().tolist())


def write(manifest: pd.DataFrame, path: str | Path) -> None:
    from pipeline.io import atomic_path

    with atomic_path(path, suffix=".csv") as tmp:
        manifest.to_csv(tmp, index=False)
