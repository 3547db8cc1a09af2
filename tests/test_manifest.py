"""The manifest: what is scanned, what is skipped, and a deterministic stratified split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pipeline import manifest


def make_folder(root, counts: dict[str, int], size=(20, 16)):
    rng = np.random.default_rng(0)
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


def test_rows_and_columns(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 10, "dog": 12})
    frame, skipped = manifest.build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    assert list(frame.columns) == manifest.COLUMNS
    assert len(frame) == 22 and not skipped
    row = frame.iloc[0]
    assert (row["path"], row["label"]) == ("cat/000.png", "cat")
    assert (row["width"], row["height"], row["channels"], row["format"]) == (20, 16, 3, "PNG")
    assert len(row["sha256"]) == 64 and row["bytes"] == (root / "cat/000.png").stat().st_size


def test_hidden_and_non_image_files_are_skipped_and_counted(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "cat" / "._000.png").write_bytes(b"\0")
    (root / "cat" / "notes.txt").write_text("hi")
    (root / "README.md").write_text("top-level file")
    frame, skipped = manifest.build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    assert len(frame) == 3
    assert skipped == {"hidden": 2, "not an image": 1, "outside a class folder": 1}


def test_undecodable_image_is_kept_with_its_error(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / "cat" / "broken.jpg").write_text("not a jpeg")
    frame, _ = manifest.build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    bad = frame[frame["path"] == "cat/broken.jpg"].iloc[0]
    assert "UnidentifiedImageError" in bad["error"] and bad["width"] is pd.NA


def test_split_is_stratified_and_seeded(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 20, "b": 40})
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    first, _ = manifest.build(root, fractions, seed=7)
    again, _ = manifest.build(root, fractions, seed=7)
    other, _ = manifest.build(root, fractions, seed=8)
    assert first.equals(again)
    assert not first["split"].equals(other["split"])
    counts = first.groupby(["label", "split"]).size().to_dict()
    assert counts == {("a", "test"): 5, ("a", "train"): 10, ("a", "val"): 5,
                      ("b", "test"): 10, ("b", "train"): 20, ("b", "val"): 10}


def test_small_class_still_reaches_every_split():
    splits = manifest.stratified_split(["x"] * 3, {"train": 0.8, "val": 0.1, "test": 0.1}, 0)
    assert sorted(splits) == ["test", "train", "val"]


def test_csv_round_trip(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 4, "dog": 4})
    (root / "dog" / "broken.jpg").write_text("x")
    frame, _ = manifest.build(root, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    manifest.write(frame, tmp_path / "m.csv")
    back = manifest.read(tmp_path / "m.csv")
    assert back.equals(frame)
    assert manifest.classes(back) == ["cat", "dog"]


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_bad_source_names_the_path(tmp_path, case):
    target = tmp_path / "source"
    if case == "file":
        target.write_text("x")
    elif case == "empty":
        (target / "cat").mkdir(parents=True)
    with pytest.raises(manifest.DataSourceError, match="data.source") as err:
        manifest.build(target, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0)
    assert str(target) in str(err.value)
