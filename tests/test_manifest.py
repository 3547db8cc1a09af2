"""The manifest: what is scanned, what is skipped, and a deterministic stratified split."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from helpers import image_policy
from PIL import Image

from pipeline.data import manifest
from pipeline.data.images import inspect_all
from pipeline.data.scan import check_classes, scan
from pipeline.data.source_errors import DataSourceError
from pipeline.data.splits import stratified_split


def make_folder(root, counts: dict[str, int], size=(20, 16)):
    rng = np.random.default_rng(0)
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{i:03d}.png")
    return root


def build(root, fractions: dict[str, float], seed: int, presplit=None):
    """(manifest, scan) as prepare makes them: scan, inspect every image once, build."""
    found = scan(root, presplit)
    inspected = inspect_all(root, [rel for rel, _ in found.images], image_policy(), workers=2)
    return manifest.build(found.images, found.splits, inspected, fractions, seed), found


def test_rows_and_columns(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 10, "dog": 12})
    frame, found = build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    assert list(frame.columns) == manifest.FILE_COLUMNS + manifest.IMAGE_COLUMNS
    assert len(frame) == 22 and not found.skipped
    row = frame.iloc[0]
    assert (row["path"], row["label"]) == ("cat/000.png", "cat")
    assert (row["width"], row["height"], row["channels"], row["format"]) == (20, 16, 3, "PNG")
    data = (root / "cat/000.png").read_bytes()
    assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
    assert (row["decodable"], row["action"], row["error"]) == (True, "ok", "")


def test_hidden_and_non_image_files_are_skipped_and_counted(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "cat" / "._000.png").write_bytes(b"\0")
    (root / "cat" / "notes.txt").write_text("hi")
    (root / "README.md").write_text("top-level file")
    frame, found = build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    assert len(frame) == 3
    assert found.skipped == {"hidden": 2, "not an image": 1, "outside a class folder": 1}


def test_undecodable_image_is_kept_with_its_error(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / "cat" / "broken.jpg").write_text("not a jpeg")
    frame, _ = build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    bad = frame[frame["path"] == "cat/broken.jpg"].iloc[0]
    assert bad["error"] == bad["issue"] == "not an image" and pd.isna(bad["width"])
    assert not bad["decodable"] and bad["action"] == "reject" and bad["channels"] is pd.NA




def test_integer_columns_stay_nullable_integers(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / "cat" / "broken.jpg").write_text("not a jpeg")
    frame, _ = build(root, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=1)
    bad = frame[frame["path"] == "cat/broken.jpg"].iloc[0]
    assert bad["width"] is pd.NA
    assert {c: str(frame[c].dtype) for c in ("width", "height", "channels", "bits", "bytes")} \
        == dict.fromkeys(("width", "height", "channels", "bits", "bytes"), "Int64")


def test_split_is_stratified_and_seeded(tmp_path):
    root = make_folder(tmp_path / "data", {"a": 20, "b": 40})
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    first, _ = build(root, fractions, seed=7)
    again, _ = build(root, fractions, seed=7)
    other, _ = build(root, fractions, seed=8)
    assert first.equals(again)
    assert not first["split"].equals(other["split"])
    counts = first.groupby(["label", "split"]).size().to_dict()
    assert counts == {("a", "test"): 5, ("a", "train"): 10, ("a", "val"): 5,
                      ("b", "test"): 10, ("b", "train"): 20, ("b", "val"): 10}


def test_small_class_still_reaches_every_split():
    splits = stratified_split(["x"] * 3, {"train": 0.8, "val": 0.1, "test": 0.1}, 0)
    assert sorted(splits) == ["test", "train", "val"]


def test_csv_round_trip(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 4, "dog": 4})
    (root / "dog" / "broken.jpg").write_text("x")
    frame, _ = build(root, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    manifest.write(frame, tmp_path / "m.csv")
    back = manifest.read(tmp_path / "m.csv")
    assert back.equals(frame)
    assert manifest.classes(back) == ["cat", "dog"]


def test_csv_round_trip_keeps_every_value(tmp_path):
    """What survives despite the dtypes above: every value, and the classes."""
    root = make_folder(tmp_path / "data", {"cat": 4, "dog": 4})
    (root / "dog" / "broken.jpg").write_text("x")
    frame, _ = build(root, {"train": 0.5, "val": 0.25, "test": 0.25}, seed=0)
    manifest.write(frame, tmp_path / "m.csv")
    back = manifest.read(tmp_path / "m.csv")
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame) == 9
    for column in frame.columns:
        for built, read in zip(frame[column], back[column], strict=True):
            assert (pd.isna(built) and pd.isna(read)) or built == read, (column, built, read)
    assert manifest.classes(back) == ["cat", "dog"]


@pytest.mark.parametrize("case", ["missing", "file", "empty"])
def test_bad_source_names_the_path(tmp_path, case):
    target = tmp_path / "source"
    if case == "file":
        target.write_text("x")
    elif case == "empty":
        (target / "cat").mkdir(parents=True)
    with pytest.raises(DataSourceError, match="data.source") as err:
        scan(target)
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
    found = scan(root)
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
    frame, found = build(tmp_path / "data", {"train": 0.6, "val": 0.2, "test": 0.2},
                         seed=0, presplit=folders)
    assert frame["path"].iloc[0] == "train/cat/000.png"
    assert dict(zip(frame["path"], frame["split"], strict=True))["Validation/dog/000.png"] == "val"
    assert frame.groupby("split").size().to_dict() == {"test": 2, "train": 6, "val": 2}
    assert set(frame["label"]) == {"cat", "dog"}
    assert found.other_folders == {"extra": 1}


def test_a_classifier_needs_two_classes(tmp_path):
    root = make_folder(tmp_path / "data", {"cat": 3})
    (root / "dog").mkdir()
    found = scan(root)
    with pytest.raises(DataSourceError,
                       match=r"at least 2 classes; found 1 \('cat'\).*empty class folders: dog"):
        check_classes(found.labels, root, found)


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


def _counts(labels: list[str], splits: list[str]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for label, split in zip(labels, splits, strict=True):
        out.setdefault(label, {"train": 0, "val": 0, "test": 0})[split] += 1
    return out


def test_each_class_is_split_by_its_own_rounded_counts_the_rest_to_train():
    """Per class: round(n x val) to val, round(n x test) to test, the remainder to train;
    so a small class is not starved by a big one, and a split of 3 gets one of each."""
    labels = ["big"] * 47 + ["mid"] * 10 + ["small"] * 3 + ["one"] * 1 + ["two"] * 2
    splits = stratified_split(labels, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    assert _counts(labels, splits) == {
        "big": {"train": 33, "val": 7, "test": 7},  # 7.05 -> 7 each
        "mid": {"train": 6, "val": 2, "test": 2},  # 1.5 -> 2 (round half to even)
        "small": {"train": 1, "val": 1, "test": 1},  # 0.45 -> at least one each
        "one": {"train": 1, "val": 0, "test": 0},  # too few: train (validate says so)
        "two": {"train": 2, "val": 0, "test": 0}}


def test_the_split_is_a_seeded_shuffle_within_each_class():
    labels = ["a", "b"] * 20
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    first = stratified_split(labels, fractions, seed=1)
    assert stratified_split(labels, fractions, seed=1) == first
    assert stratified_split(labels, fractions, seed=2) != first
    assert _counts(labels, first) == {c: {"train": 10, "val": 5, "test": 5} for c in "ab"}
    # Not the order given: a shuffle, so test is not simply the first images of a class.
    assert first[::2][:5] != ["test"] * 5


def test_a_split_asked_for_nothing_gets_nothing_even_in_a_small_class():
    splits = stratified_split(["x"] * 5, {"train": 0.8, "val": 0.2, "test": 0.0}, seed=0)
    assert sorted(splits) == ["train"] * 4 + ["val"]
    splits = stratified_split(["x"] * 5, {"train": 0.8, "val": 0.0, "test": 0.2}, seed=0)
    assert sorted(splits) == ["test"] + ["train"] * 4


def test_a_presplit_set_keeps_its_folders_and_carves_val_from_train_only_when_asked():
    from pipeline.data.splits import assign_splits, carve_val

    frame = pd.DataFrame({"label": ["cat"] * 10 + ["dog"] * 10,
                          "split": (["train"] * 8 + ["test"] * 2) * 2})
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    kept = assign_splits(frame, fractions, seed=0, presplit=True, carve=False)
    assert kept["split"].tolist() == frame["split"].tolist()
    carved = assign_splits(frame, fractions, seed=0, presplit=True, carve=True)
    assert frame["split"].tolist() == (["train"] * 8 + ["test"] * 2) * 2  # not changed
    assert (carved["split"] == "test").tolist() == (frame["split"] == "test").tolist()
    assert _counts(carved["label"].tolist(), carved["split"].tolist()) == {
        c: {"train": 6, "val": 2, "test": 2} for c in ("cat", "dog")}  # 0.2 of each 8
    assert carve_val(["cat"] * 8, 0.2, seed=0).count("val") == 2
    drawn = assign_splits(frame, fractions, seed=0, presplit=False, carve=False)
    assert _counts(drawn["label"].tolist(), drawn["split"].tolist()) == {
        c: {"train": 7, "val": 2, "test": 1} for c in ("cat", "dog")}


def test_the_same_seed_gives_the_same_split_through_every_entry_point():
    """prepare draws through assign_splits: the split is stratified_split's for the seed of
    params.yaml (and the carved validation split carve_val's), never an unseeded draw."""
    from pipeline.data.splits import assign_splits, carve_val

    labels = ["cat"] * 12 + ["dog"] * 12
    fractions = {"train": 0.5, "val": 0.25, "test": 0.25}
    frame = pd.DataFrame({"label": labels, "split": ["train"] * 24})
    drawn = assign_splits(frame, fractions, 7, presplit=False, carve=False)
    assert drawn["split"].tolist() == stratified_split(labels, fractions, 7)
    carved = assign_splits(frame, fractions, 7, presplit=True, carve=True)
    assert carved["split"].tolist() == carve_val(labels, 0.25, 7)
    assert carve_val(labels, 0.25, 7) == stratified_split(
        labels, {"train": 0.75, "val": 0.25, "test": 0.0}, 7)


def test_a_test_share_that_leaves_no_room_still_keeps_one_validation_image():
    splits = stratified_split(["x"] * 3, {"train": 0.05, "val": 0.05, "test": 0.9}, seed=0)
    assert sorted(splits) == ["test", "test", "val"]
