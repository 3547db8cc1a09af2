"""Image-level checks: every bad input of the issue, its outcome, and no file touched."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    hamming,
    image_policy,
    images_params,
    inspect_image,
    noise,
    snapshot,
    validate_params,
    write_bad_files,
)
from PIL import Image

from pipeline.data import images
from pipeline.data.duplicates import near_duplicates
from pipeline.data.images import ImagePolicy, inspect_all
from pipeline.data.phash import phash, to_rgb
from pipeline.data.policy import apply_policy, problems

POLICY = image_policy()


def smooth(seed: int, size: int = 96) -> Image.Image:
    """A photo-like image: low-frequency colour blobs, so a perceptual hash means something."""
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8))
    return small.resize((size, size), Image.Resampling.BICUBIC)


def make_bad_inputs(root: Path) -> None:
    """One file per case of the issue's list, in class folders with awkward names."""
    cls = root / "my cat"  # a space
    cls.mkdir(parents=True)
    uni = root / "café ☕"  # Unicode
    uni.mkdir()
    Image.fromarray(noise(64, 48)).save(cls / "good.jpg", quality=90)
    Image.fromarray(noise(40, 40)).save(uni / "good.png")
    write_bad_files(cls, (cls / "good.jpg").read_bytes(), seed=0)
    Image.new("RGB", (200, 16), "blue").save(cls / "strip.png")
    lab = Image.fromarray(noise(40, 40, 7)).convert("LAB")
    lab.save(cls / "lab.tif")
    outside = root.parent / "outside.png"
    Image.fromarray(noise(40, 40, 8)).save(outside)
    (cls / "link_out.png").symlink_to(outside)
    (cls / "link_in.png").symlink_to(uni / "good.png")


EXPECTED = {  # file: (action, issue, extra column checks)
    "my cat/good.jpg": ("ok", "", {"format": "JPEG", "mode": "RGB", "bits": 8, "width": 64,
                                   "height": 48, "aspect": 1.333, "decodable": True}),
    "café ☕/good.png": ("ok", "", {"format": "PNG"}),
    "my cat/empty.jpg": ("reject", "zero-byte file", {"decodable": False}),
    "my cat/truncated.jpg": ("reject", "truncated", {"truncated": True, "decodable": False,
                                                     "format": "JPEG", "width": 64}),
    "my cat/text.jpg": ("reject", "not an image", {"decodable": False, "format": ""}),
    "my cat/png_named.jpg": ("ok", "", {"format": "PNG", "ext_mismatch": True}),
    "my cat/cmyk.jpg": ("convert", "CMYK converted", {"mode": "CMYK", "format": "JPEG"}),
    "my cat/16bit.png": ("convert", "16-bit converted", {"mode": "I;16", "bits": 16}),
    "my cat/rgba.png": ("convert", "RGBA converted", {"mode": "RGBA"}),
    "my cat/palette.gif": ("convert", "P converted", {"mode": "P", "format": "GIF"}),
    "my cat/grey.jpg": ("convert", "L converted", {"mode": "L"}),
    "my cat/tiny.png": ("reject", "too small 1x1 < 16", {"decodable": True}),
    "my cat/strip.png": ("reject", "aspect 12.5 > 10", {"aspect": 12.5}),
    "my cat/bomb.png": ("reject", "decompression bomb: 400,000,000 pixels, over the 89,478,485-"
                        "pixel cap (data.images.max_pixels)", {"decodable": False}),
    "my cat/lab.tif": ("reject", "format TIFF not allowed; mode LAB not allowed", {}),
    "my cat/link_out.png": ("reject", "symbolic link outside the data folder", {}),
    "my cat/link_in.png": ("ok", "", {}),
}


@pytest.fixture(scope="module")
def inspected(tmp_path_factory):
    root = tmp_path_factory.mktemp("images") / "data"
    make_bad_inputs(root)
    before = snapshot(root.parent)  # the data folder and the file a link points out to
    frame = inspect_all(root, list(EXPECTED), POLICY, workers=2)
    return root, frame, before


def test_columns_and_order(inspected):
    _, frame, _ = inspected
    assert list(frame.columns) == images.COLUMNS
    assert frame["path"].tolist() == list(EXPECTED)


@pytest.mark.parametrize("rel", list(EXPECTED))
def test_bad_input_outcome(inspected, rel):
    root, frame, _ = inspected
    row = frame.set_index("path").loc[rel]
    action, issue, extra = EXPECTED[rel]
    assert (row["action"], row["issue"]) == (action, issue)
    for col, value in extra.items():
        assert row[col] == value, col
    if row["decodable"]:
        assert re.fullmatch(r"[0-9a-f]{16}", row["phash"]), row["phash"]
        with Image.open(root / rel) as img:
            assert row["phash"] == phash(img)  # the hash of the image itself
    else:
        assert row["phash"] == ""


def test_file_facts_come_from_the_bytes_read(inspected):
    """Each file is read once: its size and sha256 are of those bytes."""
    root, frame, _ = inspected
    for row in frame.itertuples():
        if row.issue == "symbolic link outside the data folder":  # never read
            assert pd.isna(row.bytes) and row.sha256 == ""
            continue
        data = (root / row.path).read_bytes()
        assert (row.bytes, row.sha256) == (len(data), hashlib.sha256(data).hexdigest()), row.path


def test_phash_tells_different_images_apart(inspected):
    _, frame, _ = inspected
    hashes = frame.set_index("path")["phash"]
    assert hashes["my cat/good.jpg"] != hashes["café ☕/good.png"]
    # link_in.png is café ☕/good.png under another name: the same image, the same hash.
    assert hashes["my cat/link_in.png"] == hashes["café ☕/good.png"]


def test_no_file_is_modified(inspected):
    root, frame, before = inspected
    apply_policy(frame.assign(split="train"), bad="quarantine", duplicates="drop",
                 near_threshold=3)
    assert snapshot(root.parent) == before


def test_pillow_limit_is_restored_and_warnings_do_not_leak(tmp_path, recwarn):
    limit = Image.MAX_IMAGE_PIXELS
    Image.fromarray(noise(200, 200)).save(tmp_path / "big.png")
    # 40,000 pixels: between 1x and 2x the limit is Pillow's warning, above 2x its error.
    for max_pixels in (30_000, 10_000):
        row = inspect_image(tmp_path / "big.png", "big.png", image_policy(max_pixels=max_pixels))
        assert row["action"] == "reject"
        assert row["issue"] == (f"decompression bomb: 40,000 pixels, over the {max_pixels:,}"
                                "-pixel cap (data.images.max_pixels)")
    assert limit == Image.MAX_IMAGE_PIXELS
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]


def test_policy_options(tmp_path):
    Image.fromarray(noise(40, 40)).convert("P").save(tmp_path / "p.gif")
    Image.fromarray(noise(300, 200)).save(tmp_path / "big.png")
    no_gif = image_policy(allowed_formats=frozenset({"JPEG", "PNG"}))
    assert inspect_image(tmp_path / "p.gif", "p.gif", no_gif)["issue"] == "format GIF not allowed"
    rgb_only = image_policy(modes_convert=frozenset({"RGB"}))
    assert inspect_image(tmp_path / "p.gif", "p.gif", rgb_only)["issue"] == "mode P not allowed"
    row = inspect_image(tmp_path / "big.png", "big.png", image_policy(max_side=256))
    assert row["issue"] == "too large 300x200 > 256"


def test_policy_from_params_takes_the_sides_from_validate():
    """data.images and validate's sides, so prepare's verdicts and validate's suite agree."""
    im = images_params(formats=["JPEG", "PNG"], modes=["RGB", "L"], max_aspect=4.0,
                       max_pixels=1000)
    policy = ImagePolicy.from_params(im, validate_params(min_side=20, max_side=300))
    assert policy == ImagePolicy(
        allowed_formats=frozenset({"JPEG", "PNG"}), modes_convert=frozenset({"RGB", "L"}),
        min_side=20, max_side=300, max_aspect=4.0, max_pixels=1000)


def test_sixteen_bit_is_scaled_not_clipped():
    """Pillow's own convert() clips I;16 to white; the pipeline's TF decoder shifts by 8."""
    wide = np.array([[0, 255, 256, 65535]], dtype=np.uint16)
    rgb = np.asarray(to_rgb(Image.fromarray(wide)))
    assert rgb[0, :, 0].tolist() == [0, 0, 1, 255]


def test_phash_is_imagehash_compatible():
    """Same bits as imagehash.phash (scipy's DCT-II; scipy is a dependency)."""
    from scipy import fftpack

    for seed in range(5):
        img = smooth(seed)
        grey = np.asarray(img.convert("L").resize((32, 32), Image.Resampling.LANCZOS), float)
        low = fftpack.dct(fftpack.dct(grey, axis=0), axis=1)[:8, :8]
        bits = "".join("1" if b else "0" for b in (low > np.median(low)).flatten())
        assert phash(img) == f"{int(bits, 2):016x}"


# --------------------------------------------------------------------------- duplicates


@pytest.fixture
def near_dup_folder(tmp_path):
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    smooth(1).save(root / "a" / "orig.png")
    smooth(1).resize((70, 70), Image.Resampling.BILINEAR).save(root / "a" / "small.jpg",
                                                                 quality=60)
    smooth(2).save(root / "a" / "other.png")
    frame = inspect_all(root, ["a/orig.png", "a/small.jpg", "a/other.png"], POLICY, workers=2)
    return frame


def test_near_duplicate_found_at_the_threshold(near_dup_folder):
    frame = near_dup_folder
    hashes = dict(zip(frame["path"], frame["phash"], strict=True))
    d = hamming(hashes["a/orig.png"], hashes["a/small.jpg"])
    far = hamming(hashes["a/orig.png"], hashes["a/other.png"])
    assert d <= 4 < 16 <= far  # resize + JPEG moves a few bits; another image ~half of 64
    assert near_duplicates(frame, d) == [("a/orig.png", "a/small.jpg", d)]


@pytest.mark.parametrize("threshold", [1, 2, 3, 4, 6])
def test_near_duplicate_threshold_is_inclusive_and_exact(threshold):
    """Copies of one hash at 1 to 7 bits (every side of both index strategies: banded up
    to 3 bits, every pair above): found up to the threshold, not one bit beyond."""
    base = 0x9E3779B97F4A7C15
    bits = [0, 17, 33, 49, 62, 8, 40]  # spread over the four 16-bit bands
    copies = {f"d{k}": base ^ sum(1 << b for b in bits[:k]) for k in range(1, 8)}
    frame = pd.DataFrame({"path": ["base", *copies],
                          "phash": [f"{v:016x}" for v in (base, *copies.values())]})
    found = {(a, b): d for a, b, d in near_duplicates(frame, threshold) if a == "base"}
    assert found == {("base", f"d{k}"): k for k in range(1, threshold + 1)}


def random_hashes(n: int, planted: int, flips: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = [int(v) for v in rng.integers(0, 2**63, n, dtype=np.int64)]
    for i in range(planted):  # copies of the first hashes with `flips` bits changed
        v = values[i]
        for bit in rng.choice(64, flips, replace=False):
            v ^= 1 << int(bit)
        values.append(v)
    return pd.DataFrame({"path": [f"{i:05d}" for i in range(len(values))],
                         "phash": [f"{v:016x}" for v in values]})


def brute_force(frame: pd.DataFrame, threshold: int) -> list[tuple[str, str, int]]:
    rows = list(zip(frame["path"], frame["phash"], strict=True))
    return [(a, b, hamming(ha, hb)) for i, (a, ha) in enumerate(rows)
            for b, hb in rows[i + 1:] if hamming(ha, hb) <= threshold]


@pytest.mark.parametrize("threshold, flips", [(0, 0), (3, 3), (3, 4), (6, 5)])
def test_near_duplicates_index_matches_brute_force(threshold, flips):
    frame = random_hashes(400, planted=25, flips=flips)
    found = near_duplicates(frame, threshold, chunk=64)
    assert found == brute_force(frame, threshold)
    assert len(found) == (25 if flips <= threshold else 0)


def test_missing_hashes_are_ignored():
    frame = pd.DataFrame({"path": ["a", "b", "c"], "phash": ["00ff", "", None]})
    assert near_duplicates(frame, 64) == []


# --------------------------------------------------------------------------- policy


def policy_frame() -> pd.DataFrame:
    rows = [  # path, split, action, issue, sha256, phash
        ("c/bad.jpg", "train", "reject", "truncated", "s0", ""),
        ("c/a.jpg", "train", "ok", "", "s1", "0000000000000000"),
        ("c/a_copy.jpg", "train", "ok", "", "s1", "0000000000000000"),
        ("c/a_test.jpg", "test", "convert", "L converted", "s1", "0000000000000000"),
        ("c/a_near.jpg", "val", "ok", "", "s2", "0000000000000003"),
        ("c/b.jpg", "test", "ok", "", "s3", "ffffffffffffffff"),
        ("c/b_near.jpg", "train", "ok", "", "s4", "fffffffffffffff0"),
    ]
    return pd.DataFrame(rows, columns=["path", "split", "action", "issue", "sha256", "phash"])


def test_fail_policy_keeps_everything_and_flags_it():
    kept, dropped = apply_policy(policy_frame(), bad="fail", duplicates="fail", near_threshold=2)
    assert dropped.empty and len(kept) == 7
    flags = kept.set_index("path")[["duplicate_of", "duplicate_distance", "leakage"]]
    assert flags.loc["c/a_copy.jpg"].tolist() == ["c/a.jpg", 0, False]
    assert flags.loc["c/a_test.jpg"].tolist() == ["c/a.jpg", 0, True]
    assert flags.loc["c/a_near.jpg"].tolist() == ["c/a.jpg", 2, True]
    assert flags.loc["c/b.jpg", "duplicate_of"] == ""  # 4 bits from b_near: over the threshold
    assert flags.loc["c/bad.jpg", "duplicate_of"] == ""  # rejected rows are not compared
    assert problems(kept) == [
        "c/bad.jpg: truncated",
        "c/a_copy.jpg: exact copy of c/a.jpg (copy within a split)",
        "c/a_test.jpg: exact copy of c/a.jpg (leakage across splits)",
        "c/a_near.jpg: near copy (distance 2) of c/a.jpg (leakage across splits)",
    ]


def test_quarantine_and_drop_record_the_reasons():
    kept, dropped = apply_policy(policy_frame(), bad="quarantine", duplicates="drop",
                                 near_threshold=4)
    assert sorted(kept["path"]) == ["c/a.jpg", "c/b_near.jpg"]
    reasons = dict(zip(dropped["path"], dropped["reason"], strict=True))
    assert reasons == {
        "c/bad.jpg": "quarantined: truncated",
        "c/a_copy.jpg": "exact copy of c/a.jpg in train",
        "c/a_test.jpg": "exact copy of c/a.jpg, leakage train -> test",
        "c/a_near.jpg": "near copy (distance 2) of c/a.jpg, leakage train -> val",
        "c/b.jpg": "near copy (distance 4) of c/b_near.jpg, leakage train -> test",
    }
    assert problems(kept) == []


def test_chain_of_near_duplicates_keeps_the_far_end():
    """a ~ b ~ c with a and c apart: b is a copy of a; c is a copy of nothing kept."""
    frame = pd.DataFrame({"path": ["a", "b", "c"], "split": "train", "action": "ok",
                          "issue": "", "phash": ["0000000000000000", "0000000000000003",
                                                 "000000000000000f"]})
    kept, dropped = apply_policy(frame, bad="fail", duplicates="drop", near_threshold=2)
    assert kept["path"].tolist() == ["a", "c"] and dropped["path"].tolist() == ["b"]


def test_bad_policy_values():
    with pytest.raises(ValueError, match="bad must be"):
        apply_policy(policy_frame(), bad="ignore", duplicates="fail", near_threshold=None)
    with pytest.raises(ValueError, match="duplicates must be"):
        apply_policy(policy_frame(), bad="fail", duplicates="keep", near_threshold=None)


def test_leading_dot_folder_is_skipped_by_the_scan(tmp_path):
    """Scanning is the manifest's job: a class folder named .x is hidden, and counted."""
    from pipeline.data.scan import scan

    root = tmp_path / "data"
    for name in ("cat", ".dotted"):
        (root / name).mkdir(parents=True)
        Image.fromarray(noise(20, 20)).save(root / name / "1.png")
    found = scan(root)
    assert found.images == [("cat/1.png", "cat")] and found.skipped["hidden"] == 1
    assert os.listdir(root / ".dotted") == ["1.png"]  # skipped, not touched


def test_bmps_tensorflow_misreads_are_rejected(tmp_path):
    """TF's BMP decoder ignores palettes (indices come out as grey) and fails on 1-bit."""
    pixels = noise(40, 40, 9)
    Image.fromarray(pixels).save(tmp_path / "rgb.bmp")
    Image.fromarray(pixels).convert("L").save(tmp_path / "grey.bmp")
    Image.fromarray(pixels).convert("P").save(tmp_path / "palette.bmp")
    Image.fromarray(pixels).convert("1").save(tmp_path / "bits.bmp")
    verdict = {name: inspect_image(tmp_path / name, name, POLICY)
               for name in ("rgb.bmp", "grey.bmp", "palette.bmp", "bits.bmp")}
    assert verdict["rgb.bmp"]["action"] == "ok"
    assert verdict["grey.bmp"]["action"] == "convert"
    assert verdict["palette.bmp"]["issue"] == (
        "BMP with palette (colour-indexed) pixels, which TensorFlow misreads (save it as PNG)")
    assert verdict["bits.bmp"]["issue"].startswith("BMP with 1-bit pixels")
    assert {v["action"] for n, v in verdict.items() if n in ("palette.bmp", "bits.bmp")} == {
        "reject"}


def test_mark_copies_marks_copies_only_and_leaves_the_rest_clear():
    """Every row gets the three columns: a copy names its original, its distance and
    whether the two are in different splits; any other row, and a row left out of the
    comparison (not usable), is clear: no original, no distance, no leakage."""
    from pipeline.data.duplicates import mark_copies

    base, near, other = "0" * 16, "0" * 15 + "3", "f" * 16  # near: 2 bits from base
    frame = pd.DataFrame({
        "path": ["c/orig.jpg", "c/test_copy.jpg", "c/x_near.jpg", "c/other.jpg", "c/bad.jpg"],
        "split": ["train", "test", "train", "train", "val"],
        "sha256": ["s1", "s1", "s2", "s3", "s1"],
        "phash": [base, base, near, other, base]})
    usable = pd.Series([True, True, True, True, False])
    marked = mark_copies(frame, near_threshold=2, usable=usable).set_index("path")
    assert marked["duplicate_of"].to_dict() == {
        "c/orig.jpg": "", "c/test_copy.jpg": "c/orig.jpg", "c/x_near.jpg": "c/orig.jpg",
        "c/other.jpg": "", "c/bad.jpg": ""}
    assert marked["duplicate_distance"].dtype == "Int64"
    assert marked["duplicate_distance"].tolist() == [pd.NA, 0, 2, pd.NA, pd.NA]
    assert marked["leakage"].tolist() == [False, True, False, False, False]
    assert frame.columns.tolist() == ["path", "split", "sha256", "phash"]  # not changed
    # Without splits (a folder not yet split): copies by path order, never leakage.
    flat = mark_copies(frame.drop(columns="split"), near_threshold=None).set_index("path")
    assert flat["duplicate_of"].to_dict() == {
        "c/orig.jpg": "c/bad.jpg", "c/test_copy.jpg": "c/bad.jpg", "c/x_near.jpg": "",
        "c/other.jpg": "", "c/bad.jpg": ""}
    assert not flat["leakage"].any()


def test_rows_without_a_hash_are_never_copies_of_each_other():
    from pipeline.data.duplicates import mark_copies

    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg", "c.jpg"], "split": "train",
                          "sha256": ["", "", None], "phash": ["", None, ""]})
    marked = mark_copies(frame, near_threshold=64)
    assert marked["duplicate_of"].tolist() == ["", "", ""]


def test_the_popcount_without_numpy_2_counts_the_same_bits(monkeypatch):
    from pipeline.data import duplicates

    values = np.array([0, 1, 3, 0xFFFF, 2**64 - 1, 0x8000000000000001], dtype=np.uint64)
    expected = [0, 1, 2, 16, 64, 2]
    assert duplicates._popcount(values).tolist() == expected
    monkeypatch.delattr(np, "bitwise_count")  # NumPy 1.x has none
    assert duplicates._popcount(values).tolist() == expected
    assert duplicates._popcount(values.reshape(2, 3)).tolist() == [expected[:3], expected[3:]]


def test_near_duplicates_in_small_chunks_find_the_pairs_at_the_end_too():
    hashes = ["0000000000000000", "ffffffffffffffff", "00000000ffffffff",
              "ffffffff00000000", "0f0f0f0f0f0f0f0f", "0f0f0f0f0f0f0f0e"]
    frame = pd.DataFrame({"path": [f"{i}.png" for i in range(6)], "phash": hashes})
    assert near_duplicates(frame, 5, chunk=1) == [("4.png", "5.png", 1)]
    assert near_duplicates(frame, 5, chunk=4) == [("4.png", "5.png", 1)]


def test_two_images_alone_are_compared():
    frame = pd.DataFrame({"path": ["a.png", "b.png"],
                          "phash": ["0f0f0f0f0f0f0f0f", "0f0f0f0f0f0f0f0e"]})
    assert near_duplicates(frame, 2) == [("a.png", "b.png", 1)]
    assert near_duplicates(frame, 2, chunk=1) == [("a.png", "b.png", 1)]
    assert near_duplicates(frame.iloc[:1], 64) == []
    assert near_duplicates(frame, -1) == []


def test_a_copy_is_called_exact_only_for_known_equal_bytes():
    """Two images without a content hash (blank) are not "the same bytes": the near copy
    is named with its distance. A row that names its original but not the distance (a
    manifest marked elsewhere) is "copy", not a distance made up."""
    from pipeline.data.duplicates import copy_kind, mark_copies

    frame = pd.DataFrame({"path": ["a.jpg", "b.jpg"], "split": "train", "sha256": "",
                          "phash": ["0" * 16, "0" * 15 + "3"]})
    marked = mark_copies(frame, near_threshold=2)
    assert marked["duplicate_of"].tolist() == ["", "a.jpg"]
    assert copy_kind(marked, 1) == "near copy (distance 2)"
    marked.loc[1, "sha256"] = "s2"
    marked.loc[1, "duplicate_distance"] = pd.NA
    assert copy_kind(marked, 1) == "copy"
