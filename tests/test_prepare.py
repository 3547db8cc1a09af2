"""The prepare and validate stages on real bad inputs, run as a user runs them.

Each case is a small project folder (the repository's params.yaml with a few keys
changed, as `dvc exp run -S` would) whose data.source is a generated folder or
archive; stages/prepare.py and stages/validate.py run in it as subprocesses. Every
case checks the exit code, that the output names the file and the rule, and that
the user's files are exactly as they were (bytes, mtimes, listing).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import (
    GOOD,
    link,
    make_tar,
    make_zip,
    noise,
    run_stage,
    snapshot,
    write_bad_files,
    write_params,
)
from PIL import Image

from pipeline.data import manifest

# --------------------------------------------------------------------------- helpers


def project(folder: Path, **settings) -> Path:
    """A project folder with params.yaml: the repository's with validate.min_per_class 1 and
    ``settings`` as dotted keys written with "__" (``data__images__bad``)."""
    write_params(folder, {"validate.min_per_class": 1,
                          **{key.replace("__", "."): v for key, v in settings.items()}})
    return folder


def good_images(folder: Path, n: int, seed: int, ext: str = "jpg") -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(noise(64, 48, seed * 100 + i)).save(folder / f"good_{i}.{ext}")


# --------------------------------------------------------------------------- bad files

# The issue's per-file bad inputs: (file, prepare's issue, what validate prints for it).
REJECTED = {
    "my cat/empty.jpg": ("zero-byte file", "my cat/empty.jpg (decodable=false): zero-byte file"),
    "my cat/truncated.jpg": ("truncated", "my cat/truncated.jpg (truncated=true): truncated"),
    "my cat/text.jpg": ("not an image", "my cat/text.jpg (decodable=false): not an image"),
    "my cat/tiny.png": ("too small 1x1 < 16", "my cat/tiny.png 1x1"),
    "my cat/bomb.png": ("decompression bomb: 400,000,000 pixels, over the 89,478,485-"
                        "pixel cap (data.images.max_pixels)",
                        "my cat/bomb.png (decodable=false): decompression bomb"),
    "my cat/link_out.png": ("symbolic link outside the data folder",
                            "my cat/link_out.png (decodable=false): symbolic link outside"),
}
VALIDATE_RULES = {  # the rule each of REJECTED's lines is listed under
    "my cat/empty.jpg": "every image decodes in full",
    "my cat/truncated.jpg": "no image is truncated",
    "my cat/text.jpg": "every image decodes in full",
    "my cat/tiny.png": "width between 16 and 8192 px",
    "my cat/bomb.png": "every image decodes in full",
    "my cat/link_out.png": "every image decodes in full",
}
# Read as they are and converted to RGB at load: (file, issue, mode).
CONVERTED = {
    "my cat/cmyk.jpg": ("CMYK converted", "CMYK"),
    "my cat/16bit.png": ("16-bit converted", "I;16"),
    "my cat/rgba.png": ("RGBA converted", "RGBA"),
    "my cat/palette.gif": ("P converted", "P"),
    "my cat/grey.jpg": ("L converted", "L"),
}


def make_photos(root: Path) -> None:
    """Class folders with a space, Unicode, a leading dot and none; every kind of bad file."""
    cat = root / "my cat"
    good_images(cat, 4, seed=1)
    good_images(root / "café ☕", 4, seed=2, ext="png")
    good_images(root / ".hidden class", 2, seed=3)
    (root / "empty class").mkdir()
    jpeg = (cat / "good_0.jpg").read_bytes()
    write_bad_files(cat, jpeg, seed=10)
    (cat / "good_0_copy.jpg").write_bytes(jpeg)  # an exact copy of good_0.jpg
    outside = root.parent / "outside.png"
    Image.fromarray(noise(40, 40, 17)).save(outside)
    (cat / "link_out.png").symlink_to(outside)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("user") / "photos"
    make_photos(root)
    return root


@pytest.fixture(scope="module")
def failing(photos, tmp_path_factory):
    """data.images.bad: fail (the default): prepare lists the problems, validate fails."""
    before = snapshot(photos.parent)
    folder = project(tmp_path_factory.mktemp("fail"), data__source=str(photos))
    prep, check = run_stage(folder, "prepare"), run_stage(folder, "validate")
    return folder, prep, check, before


@pytest.fixture(scope="module")
def quarantined(photos, tmp_path_factory):
    """data.images.bad: quarantine, duplicates: drop: bad files and copies are left out."""
    before = snapshot(photos.parent)
    folder = project(tmp_path_factory.mktemp("quarantine"), data__source=str(photos),
                     data__images__bad="quarantine", data__images__duplicates="drop")
    prep, check = run_stage(folder, "prepare"), run_stage(folder, "validate")
    return folder, prep, check, before


def test_fail_policy_exit_codes_and_files_untouched(failing, photos):
    folder, prep, check, before = failing
    assert prep.returncode == 0, prep.stderr
    assert check.returncode == 1, check.stdout + check.stderr
    assert "validation failed" in check.stderr
    assert snapshot(photos.parent) == before
    assert (folder / "reports/data_docs/index.html").is_file()


@pytest.mark.parametrize("rel", list(REJECTED))
def test_fail_policy_names_each_rejected_file_and_rule(failing, rel):
    _, prep, check, _ = failing
    issue, shown = REJECTED[rel]
    assert f"  {rel}: {issue}" in prep.stdout  # prepare's list of problems
    table = check.stdout
    assert shown in table, table
    # The file is listed under its rule: the rule's row comes before it, no other rule between.
    block = table[: table.index(shown)].rsplit("\n", 1)[0]
    rules = [line for line in block.splitlines() if line.startswith("critical")]
    assert VALIDATE_RULES[rel] in rules[-1]


def test_fail_policy_reports_copies_folders_and_mismatches(failing):
    folder, prep, check, _ = failing
    assert "my cat/good_0_copy.jpg: exact copy of my cat/good_0.jpg" in prep.stdout
    assert "my cat/png_named.jpg (ext_mismatch=true)" in check.stdout  # a warning
    assert "class folder 'empty class' holds no image" in prep.stderr
    assert "folder '.hidden class' starts with a dot (hidden): its 2 file(s) skipped" in prep.stderr
    metrics = json.loads((folder / "reports/data/prepare.json").read_text(encoding="utf-8"))
    assert metrics["empty_classes"] == ["empty class"]
    assert metrics["hidden_folders"] == {".hidden class": 2}
    assert metrics["rejected"] == len(REJECTED) and metrics["converted"] == len(CONVERTED)
    assert metrics["duplicates"] == 1 and metrics["ext_mismatch"] == 1
    assert metrics["per_class"] == {"café ☕": 4, "my cat": 4 + 1 + 1 + len(REJECTED)
                                    + len(CONVERTED)}


@pytest.mark.parametrize("rel", list(CONVERTED))
def test_converted_kinds_stay_and_pass(failing, rel):
    folder, _, check, _ = failing
    rows = manifest.read(folder / "data/manifest.csv").set_index("path")
    issue, mode = CONVERTED[rel]
    assert (rows.loc[rel, "action"], rows.loc[rel, "issue"], rows.loc[rel, "mode"]) == (
        "convert", issue, mode)
    assert rows.loc[rel, "decodable"] and not rows.loc[rel, "truncated"]
    assert rel not in check.stdout  # no rule fails on it


def test_quarantine_leaves_bad_files_out_with_the_reason(quarantined, photos):
    folder, prep, check, before = quarantined
    assert prep.returncode == 0, prep.stderr
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 critical failure(s), 1 warning(s)" in check.stdout  # png_named.jpg's extension
    assert snapshot(photos.parent) == before
    dropped = manifest.read(folder / "data/dropped.csv").set_index("path")["reason"].to_dict()
    copy = dropped.pop("my cat/good_0_copy.jpg")
    assert copy.startswith("exact copy of my cat/good_0.jpg")  # dropped before the split
    assert dropped == {rel: f"quarantined: {issue}" for rel, (issue, _) in REJECTED.items()}
    for rel in REJECTED:
        assert f"  {rel}: quarantined: " in prep.stdout
    kept = manifest.read(folder / "data/manifest.csv")
    assert set(kept["action"]) == {"ok", "convert"} and not kept["leakage"].any()
    metrics = json.loads((folder / "reports/data/prepare.json").read_text(encoding="utf-8"))
    assert metrics["dropped"] == {"bad": len(REJECTED), "duplicates": 1}
    small = json.loads((folder / "metrics/prepare.json").read_text(encoding="utf-8"))
    assert small == {"images": metrics["images"], "classes": 2, "left_out": len(REJECTED) + 1}
    left_out = folder / "plots/data/left_out.png"  # the picture of what was left out
    assert left_out.stat().st_size > 1000 and (folder / "plots/data/samples.png").is_file()
    classes = json.loads((folder / "reports/data/classes.json").read_text(encoding="utf-8"))
    assert set(classes) == {"café ☕", "my cat"}
    assert classes["café ☕"]["modes"] == {"RGB": 1.0}
    assert classes["café ☕"]["mean_width"] == 64.0
    assert "café ☕" in prep.stdout and "mean size" in prep.stdout  # the class table


def test_validate_fails_an_empty_class_it_is_told_about(quarantined, photos):
    folder, _, _, before = quarantined
    params = yaml.safe_load((folder / "params.yaml").read_text(encoding="utf-8"))
    params["validate"]["classes"] = ["café ☕", "empty class", "my cat"]
    (folder / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True),
                                        encoding="utf-8")
    check = run_stage(folder, "validate")
    assert check.returncode == 1
    assert "every class is present in every split" in check.stdout
    assert "empty class/train: 0 image(s)" in check.stdout
    assert snapshot(photos.parent) == before


def test_converted_kinds_load_as_rgb_for_training(photos):
    """The features stage's decoder reads every converted kind as (H, W, 3), as Pillow sees it."""
    import tensorflow as tf

    from pipeline.data.input import load_image
    from pipeline.data.phash import to_rgb

    for rel in CONVERTED:
        image = load_image(tf.constant(str(photos / rel)), 40).numpy()
        assert image.shape == (40, 40, 3), rel
        with Image.open(photos / rel) as img:
            expected = np.asarray(to_rgb(img), dtype=np.float32)
        # JPEG decoders may round their IDCT and colour transforms differently.
        tolerance = 3.0 if rel.endswith(".jpg") else 0.5
        assert np.abs(image - expected).max() <= tolerance, rel


# --------------------------------------------------------------------------- data sets


def test_single_class_is_an_error(tmp_path):
    data = tmp_path / "user" / "photos"
    good_images(data / "cat", 3, seed=4)
    (data / "dog").mkdir()
    before = snapshot(data)
    prep = run_stage(project(tmp_path / "p", data__source=str(data)), "prepare")
    assert prep.returncode == 2
    assert "a classifier needs at least 2 classes; found 1 ('cat')" in prep.stderr
    assert "empty class folders: dog" in prep.stderr
    assert snapshot(data) == before


def test_class_with_too_few_images_for_the_split_is_named(tmp_path):
    data = tmp_path / "user" / "photos"
    good_images(data / "many", 10, seed=5)
    good_images(data / "few", 2, seed=6)
    before = snapshot(data)
    folder = project(tmp_path / "p", data__source=str(data))
    assert run_stage(folder, "prepare").returncode == 0
    check = run_stage(folder, "validate")
    assert check.returncode == 1
    assert "every class is present in every split" in check.stdout
    assert "few/val: 0 image(s)" in check.stdout and "few/test: 0 image(s)" in check.stdout
    assert snapshot(data) == before


def test_missing_source_is_named(tmp_path):
    prep = run_stage(project(tmp_path / "p", data__source=str(tmp_path / "no such photos")),
                 "prepare")
    assert prep.returncode == 2
    assert f"data.source: '{tmp_path / 'no such photos'}' does not exist" in prep.stderr
    assert not (tmp_path / "no such photos").exists()


EVIL = {  # archive: (builder, what the message says)
    "dotdot.zip": (lambda p: make_zip(p, {**GOOD, "../outside.txt": b"pwned"}),
                   "member '../outside.txt' rejected: '..' path component"),
    "absolute.tar.gz": (lambda p: make_tar(p, {**GOOD, "/tmp/abs.png": b"x"}),
                        "member '/tmp/abs.png' rejected: absolute path"),
    "link.tgz": (lambda p: make_tar(p, GOOD, special=[link("cat/pw.png", "/etc/passwd")]),
                 "member 'cat/pw.png' rejected: symbolic link to '/etc/passwd'"),
}


@pytest.mark.parametrize("name", list(EVIL))
def test_evil_archive_is_refused_and_nothing_written(tmp_path, name):
    build, message = EVIL[name]
    user = tmp_path / "user"
    user.mkdir()
    archive = build(user / name)
    before = snapshot(user)
    folder = project(tmp_path / "p", data__source=str(archive))
    prep = run_stage(folder, "prepare")
    assert prep.returncode == 2
    assert f"archive {name}: {message}" in prep.stderr
    assert snapshot(user) == before
    extracted = folder / ".cache/sources/extracted"
    assert not extracted.exists() or not any(extracted.iterdir())
    assert not (tmp_path / "outside.txt").exists() and not (folder / "data").exists()


def test_presplit_archive_keeps_its_split_and_is_found_again(tmp_path):
    files = {}
    for split, n in (("train", 3), ("validation", 1), ("test", 1)):
        for label, seed in (("cat", 7), ("dog", 8)):
            for i in range(n):
                path = tmp_path / "img.png"
                Image.fromarray(noise(32, 32, seed * 100 + i * 10 + len(split))).save(path)
                files[f"ds/{split}/{label}/{i}.png"] = path.read_bytes()
    user = tmp_path / "user"
    user.mkdir()
    archive = make_tar(user / "ds.tar.gz", files)
    before = snapshot(user)
    folder = project(tmp_path / "p", data__source="../user/ds.tar.gz")
    prep = run_stage(folder, "prepare")
    assert prep.returncode == 0, prep.stderr
    assert ("\nsplits: train 6 from train/, val 2 from validation/, test 2 from test/\n"
            in prep.stdout), prep.stdout
    assert run_stage(folder, "validate").returncode == 0
    rows = manifest.read(folder / "data/manifest.csv")
    assert rows.groupby("split").size().to_dict() == {"test": 2, "train": 6, "val": 2}
    assert rows["path"].iloc[0] == "train/cat/0.png"
    record = json.loads((folder / "data/source.json").read_text(encoding="utf-8"))
    assert record["root"].startswith(".cache/sources/extracted/") and record["presplit"]
    assert (folder / record["root"] / rows["path"].iloc[0]).is_file()
    assert snapshot(user) == before

    # What the later stages use: the recorded folder, or the archive extracted again.
    from pipeline.core.params import load
    from pipeline.data.sources import data_root

    cwd = Path.cwd()
    os.chdir(folder)
    try:
        data = load().data
        assert data_root(data) == Path(record["root"])
        shutil.rmtree(".cache")
        assert (data_root(data) / rows["path"].iloc[-1]).is_file()
    finally:
        os.chdir(cwd)
    assert archive.read_bytes() and snapshot(user) == before


def test_split_folders_without_train_are_an_error_not_classes(tmp_path):
    data = tmp_path / "user" / "photos"
    for split in ("val", "test"):
        good_images(data / split / "cat", 2, seed=9)
        good_images(data / split / "dog", 2, seed=10)
    before = snapshot(data)
    prep = run_stage(project(tmp_path / "p", data__source=str(data)), "prepare")
    assert prep.returncode == 2
    assert "has the split folder(s) val/, test/ but no train/" in prep.stderr
    assert "data.presplit: ignore" in prep.stderr
    pooled = run_stage(project(tmp_path / "q", data__source=str(data), data__presplit="ignore"),
                   "prepare")
    assert pooled.returncode == 0, pooled.stderr
    rows = manifest.read(tmp_path / "q/data/manifest.csv")
    assert set(rows["label"]) == {"cat", "dog"} and set(rows["split"]) == {"train", "val", "test"}
    assert snapshot(data) == before


def test_presplit_use_requires_the_split_folders(tmp_path):
    from pipeline.data.source_errors import DataSourceError
    from pipeline.data.sources.layout import presplit_folders

    (tmp_path / "cat").mkdir()
    with pytest.raises(DataSourceError, match="data.presplit is 'use', but .* has no split "
                                              "folders"):
        presplit_folders(tmp_path, "use")
    assert presplit_folders(tmp_path, "auto") == (None, False)
    assert presplit_folders(tmp_path, "ignore") == (None, False)
