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
    frame, found = manifest.build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    assert list(frame.columns) == manifest.FILE_COLUMNS
    assert len(frame) == 22 and not found.skipped
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
    frame, found = manifest.build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    assert len(frame) == 3
    assert found.skipped == {"hidden": 2, "not an image": 1, "outside a class folder": 1}


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


def test_scan_reports_empty_hidden_and_broken_entries_by_name(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 2, "dog": 2})
    (root / "empty class").mkdir()
    (root / "only notes").mkdir()
    (root / "only notes" / "a.txt").write_text("x")
    hidden = root / ".cache_of_thumbs"
    hidden.mkdir()
    for i in range(3):
        (hidden / f"{i}.png").write_bytes(b"")
    (root / "cat" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    found = manifest.scan(root)
    assert found.labels == ["cat", "dog"]
    assert found.empty_classes == ["empty class", "only notes"]
    assert found.hidden_folders == {".cache_of_thumbs": 3}
    assert found.skipped == {"hidden": 3, "not an image": 1, "broken symbolic link": 1}


def test_presplit_scan_takes_the_split_from_the_folders(tmp_path):
    for split, counts in (("train", {"cat": 3, "dog": 3}), ("Validation", {"cat": 1, "dog": 1}),
                          ("test", {"cat": 1, "dog": 1})):
        make_folder(tmp_path / "data" / split, counts)
    (tmp_path / "data" / "extra").mkdir()
    (tmp_path / "data" / "extra" / "x.png").write_bytes(b"")
    folders = {"train": tmp_path / "data/train", "val": tmp_path / "data/Validation",
               "test": tmp_path / "data/test"}
    frame, found = manifest.build(tmp_path / "data", {"train": 0.6, "val": 0.2, "test": 0.2},
                                  seed=0, presplit=folders)
    assert frame["path"].iloc[0] == "train/cat/000.png"
    assert dict(zip(frame["path"], frame["split"], strict=True))["Validation/dog/000.png"] == "val"
    assert frame.groupby("split").size().to_dict() == {"test": 2, "train": 6, "val": 2}
    assert set(frame["label"]) == {"cat", "dog"}
    assert found.other_folders == {"extra": 1}


def test_a_classifier_needs_two_classes(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / "dog").mkdir()
    found = manifest.scan(root)
    with pytest.raises(manifest.DataSourceError,
                       match=r"at least 2 classes; found 1 \('cat'\).*empty class folders: dog"):
        manifest.check_classes(found.labels, root, found)


def test_full_manifest_round_trips_with_types(tmp_path):
    frame = pd.DataFrame({
        "path": ["0/1.png", "NA/2.png"], "label": ["0", "NA"], "split": ["train", "test"],
        "phash": ["0123456789012345", ""], "mode": ["1", ""], "decodable": [True, False],
        "leakage": [False, True], "bits": [1, None], "duplicate_distance": [None, 0],
        "aspect": [1.5, None], "duplicate_of": ["", "0/1.png"],
    })
    manifest.write(frame, tmp_path / "m.csv")
    back = manifest.read(tmp_path / "m.csv")
    assert back["label"].tolist() == ["0", "NA"] and back["phash"].tolist()[0] == "0123456789012345"
    assert back["mode"].tolist() == ["1", ""]
    assert back["decodable"].dtype == bool and back["decodable"].tolist() == [True, False]
    assert back["leakage"].tolist() == [False, True]
    assert str(back["bits"].dtype) == "Int64" and back["bits"].isna().tolist() == [False, True]
    assert back["duplicate_distance"].tolist()[1] == 0
    assert back["aspect"].dtype == float
