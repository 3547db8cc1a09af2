"""The layouts real data sets come in, EXIF orientation, and copies left out before the split.

Each case makes its files, runs stages/prepare.py (and validate where it matters) as a
user does, and checks exit 0 with the right manifest, or exit 2 with one line naming
the file or folder and the rule; the user's files stay byte-identical.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest
from helpers import STAGES, make_zip, noise, run_stage, snapshot, write_params
from PIL import Image, ImageOps

from pipeline.data import manifest


def project(folder: Path, **settings) -> Path:
    write_params(folder, {"validate.min_per_class": 1,
                          **{key.replace("__", "."): v for key, v in settings.items()}})
    return folder


def images(folder: Path, n: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(noise(64, 48, seed * 100 + i)).save(folder / f"img_{i}.jpg")


def rows(proj: Path, name: str = "manifest") -> dict[str, dict]:
    frame = manifest.read(proj / "data" / f"{name}.csv")
    return {r["path"]: r for r in frame.to_dict("records")}


def one_line_error(run: subprocess.CompletedProcess, *needles: str) -> None:
    assert run.returncode == 2, run.stdout + run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert "Traceback" not in run.stderr
    for needle in needles:
        assert needle in line, line


# --------------------------------------------------------------------------- class names


def test_nfd_folder_is_one_nfc_class_and_nfc_nfd_twins_are_an_error(tmp_path):
    nfd, nfc = unicodedata.normalize("NFD", "étoile"), "étoile"
    data = tmp_path / "data"
    images(data / nfd, 3, 1)
    images(data / "lune", 3, 2)
    proj = project(tmp_path / "p", data__source=str(data))
    run = run_stage(proj, "prepare")
    assert run.returncode == 0, run.stderr
    assert set(r["label"] for r in rows(proj).values()) == {nfc, "lune"}  # one spelling
    images(data / nfc, 3, 3)
    before = snapshot(data)
    one_line_error(run_stage(proj, "prepare"), ascii(nfd), ascii(nfc), "NFC")
    assert snapshot(data) == before


def test_case_twins_are_an_error_naming_both(tmp_path):
    data = tmp_path / "data"
    images(data / "Cat", 3, 1)
    images(data / "cat", 3, 2)
    images(data / "dog", 3, 3)
    one_line_error(run_stage(project(tmp_path / "p", data__source=str(data)), "prepare"),
                   "'Cat' and 'cat'", "differ only in case")


# --------------------------------------------------------------------------- unreadable


def prepare_without_root_powers(proj: Path) -> subprocess.CompletedProcess[str]:
    """The stage as a user who cannot bypass file permissions (CI runs as root)."""
    cmd = [sys.executable, str(STAGES / "prepare.py")]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
               *cmd]
    return subprocess.run(cmd, cwd=proj, capture_output=True, text=True, timeout=300,
                          env=os.environ.copy(), check=False)


@pytest.fixture
def locked(tmp_path):
    """chmod 000 on paths, undone after the test (so tmp_path can be removed)."""
    done: list[Path] = []

    def lock(path: Path) -> None:
        path.chmod(0)
        done.append(path)

    yield lock
    for path in done:
        path.chmod(0o755)


@pytest.mark.skipif(os.geteuid() == 0 and not Path("/usr/bin/setpriv").exists(),
                    reason="root without setpriv: file permissions cannot be enforced")
def test_unreadable_class_folder_is_an_error_naming_it(tmp_path, locked):
    data = tmp_path / "data"
    for i, label in enumerate(("cat", "dog", "owl")):
        images(data / label, 3, i)
    locked(data / "owl")
    proj = project(tmp_path / "p", data__source=str(data), data__images__bad="quarantine")
    one_line_error(prepare_without_root_powers(proj), "class folder 'owl' cannot be read",
                   "Permission denied")
    assert not (proj / "data" / "manifest.csv").exists()


@pytest.mark.skipif(os.geteuid() == 0 and not Path("/usr/bin/setpriv").exists(),
                    reason="root without setpriv: file permissions cannot be enforced")
def test_unreadable_file_and_sub_folder_are_left_out_by_name(tmp_path, locked):
    data = tmp_path / "data"
    images(data / "cat", 4, 1)
    images(data / "cat" / "batch2", 2, 2)
    images(data / "dog", 4, 3)
    locked(data / "cat" / "img_0.jpg")
    locked(data / "cat" / "batch2")
    proj = project(tmp_path / "p", data__source=str(data))  # bad: fail, the default
    run = prepare_without_root_powers(proj)
    assert run.returncode == 0, run.stderr
    dropped = {r["path"]: r["reason"] for r in rows(proj, "dropped").values()}
    assert dropped == {"cat/img_0.jpg": "quarantined: cannot read: Permission denied",
                       "cat/batch2": "quarantined: unreadable folder: Permission denied"}
    assert "cat/img_1.jpg" in rows(proj)
    # Every image of a class unreadable: a stop, not a class quietly gone.
    for i in range(1, 4):
        locked(data / "cat" / f"img_{i}.jpg")
    one_line_error(prepare_without_root_powers(proj), "no image of class 'cat' can be read",
                   "cat/img_0.jpg")


# --------------------------------------------------------------------------- layouts


def two_data_sets(data: Path) -> None:
    for year, seed in (("photos_2022", 1), ("photos_2023", 5)):
        images(data / year / "cat", 3, seed)
        images(data / year / "dog", 3, seed + 1)


def test_several_data_sets_in_a_folder_are_an_error_and_data_root_picks_one(tmp_path):
    data = tmp_path / "data"
    two_data_sets(data)
    before = snapshot(data)
    one_line_error(run_stage(project(tmp_path / "p", data__source=str(data)), "prepare"),
                   "photos_2022/, photos_2023/", "data.root")
    proj = project(tmp_path / "q", data__source=str(data), data__root="photos_2023")
    run = run_stage(proj, "prepare")
    assert run.returncode == 0, run.stderr
    assert sorted(rows(proj)) == [f"{c}/img_{i}.jpg" for c in ("cat", "dog") for i in range(3)]
    assert {r["label"] for r in rows(proj).values()} == {"cat", "dog"}
    assert snapshot(data) == before
    missing = run_stage(project(tmp_path / "r", data__source=str(data), data__root="2024"),
                        "prepare")
    one_line_error(missing, "data.root: '2024'", "photos_2022/")


def test_several_data_sets_in_an_archive_are_an_error_and_data_root_picks_one(tmp_path):
    src = tmp_path / "src"
    two_data_sets(src / "export")  # a lone wrapping folder too
    archive = make_zip(tmp_path / "photos.zip", {
        p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*.jpg")})
    one_line_error(run_stage(project(tmp_path / "p", data__source=str(archive)), "prepare"),
                   "photos_2022/, photos_2023/", "data.root")
    proj = project(tmp_path / "q", data__source=str(archive), data__root="photos_2022")
    run = run_stage(proj, "prepare")
    assert run.returncode == 0, run.stderr
    assert len(rows(proj)) == 6


@pytest.mark.parametrize("held_out", ["val", "test"])
def test_train_plus_one_held_out_folder_keeps_it_as_test_and_carves_val(tmp_path, held_out):
    data = tmp_path / "data"
    for label, seed in (("ants", 1), ("bees", 3)):
        images(data / "train" / label, 10, seed)
        images(data / held_out / label, 3, seed + 1)
    before = snapshot(data)
    proj = project(tmp_path / "p", data__source=str(data))
    run = run_stage(proj, "prepare")
    assert run.returncode == 0, run.stderr
    got = rows(proj)
    held = {p for p in got if p.startswith(f"{held_out}/")}
    assert len(held) == 6 and {got[p]["split"] for p in held} == {"test"}
    train = [r for p, r in got.items() if p.startswith("train/")]
    per_class_val = {c: sum(r["split"] == "val" and r["label"] == c for r in train)
                     for c in ("ants", "bees")}
    assert per_class_val == {"ants": 2, "bees": 2}  # 0.15 of 10, stratified, at least one
    assert f"{held_out}/ as test" in run.stdout and "data.split.val" in run.stdout
    assert run_stage(proj, "validate").returncode == 0
    assert snapshot(data) == before


def test_a_class_named_train_works_with_presplit_ignore(tmp_path):
    data = tmp_path / "data"
    for label, seed in (("train", 1), ("car", 2), ("boat", 3)):
        images(data / label, 5, seed)
    for presplit in ("ignore", "auto"):
        proj = project(tmp_path / presplit, data__source=str(data), data__presplit=presplit)
        run = run_stage(proj, "prepare")
        assert run.returncode == 0, run.stderr
        got = rows(proj)
        assert {r["label"] for r in got.values()} == {"train", "car", "boat"}
        assert {r["split"] for r in got.values()} == {"train", "val", "test"}


# --------------------------------------------------------------------------- orientation


def rotated_jpeg(path: Path, orientation: int, seed: int) -> None:
    """A 96x48 stored picture tagged to be shown turned (6, 8: a quarter turn)."""
    pixels = noise(96, 48, seed)
    pixels[:, :30] = (250, 20, 20)  # a red left band: any turn moves it
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())


def upright(path: Path, size: int) -> np.ndarray:
    import tensorflow as tf

    turned = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    return tf.image.resize(turned, (size, size), antialias=True).numpy()


def test_exif_rotated_photos_reach_the_network_upright_in_every_path(tmp_path, monkeypatch):
    import tensorflow as tf

    from pipeline.data.epochs import Epochs
    from pipeline.data.input import image_dataset, load_image, split_arrays
    from pipeline.evaluation.inference import Predictor, predict

    data = tmp_path / "data"
    images(data / "plain", 4, 1)
    (data / "phone").mkdir()
    for i, orientation in enumerate((6, 8, 6, 8)):
        rotated_jpeg(data / "phone" / f"p{i}.jpg", orientation, seed=i)
    proj = project(tmp_path / "p", data__source=str(data))
    assert run_stage(proj, "prepare").returncode == 0
    got = rows(proj)
    for i, orientation in enumerate((6, 8, 6, 8)):
        row = got[f"phone/p{i}.jpg"]
        assert (row["width"], row["height"], row["orientation"]) == (48, 96, orientation)
    assert got["plain/img_0.jpg"]["orientation"] == 1
    assert run_stage(proj, "validate").returncode == 0  # the new column passes the suite

    frame = manifest.read(proj / "data/manifest.csv")
    frame["split"] = "test"  # every image through each path
    files, labels = split_arrays(frame, data, "test", manifest.classes(frame))
    size = 32
    expected = np.stack([upright(Path(f), size) for f in files])
    stored = np.stack([tf.image.resize(np.asarray(Image.open(f).convert("RGB")), (size, size),
                                       antialias=True).numpy() for f in files])
    evaluation = np.concatenate([x for x, _ in image_dataset(files, labels, size, 64)])
    training = Epochs(files, labels, 64, seed=0, load=lambda p: load_image(p, size))
    train_x, train_y = next(iter(training.dataset(0, 1)))
    seen: list[np.ndarray] = []

    def forward(batch):
        seen.append(np.asarray(batch))
        return np.full((len(batch), 2), 0.5)

    # Whatever runtime would run the network, predict hands it the decoded batches.
    import pipeline.runtimes.select as select

    monkeypatch.setattr(select, "compile_forward", lambda model, *args: forward)
    predict(Predictor(None, size, "capture", ["phone", "plain"]), list(files), 64, 1)
    predicted = np.concatenate(seen)
    phone = np.array(["phone/" in f for f in files])
    for name, batch in (("evaluation", evaluation), ("predict", predicted)):
        assert np.abs(batch - expected).mean(axis=(1, 2, 3)).max() < 3, name
        # the check can fail: the stored (sideways) pictures are far from upright
        assert np.abs(batch[phone] - stored[phone]).mean(axis=(1, 2, 3)).min() > 20, name
    # Training shuffles: match each training image to its file by nearest upright picture.
    train_x = np.asarray(train_x)
    dist = np.abs(train_x[:, None] - expected[None]).mean(axis=(2, 3, 4))
    assert sorted(dist.argmin(axis=1).tolist()) == list(range(len(files)))
    assert dist.min(axis=1).max() < 3


def test_exif_orientation_off_records_the_stored_sizes(tmp_path):
    data = tmp_path / "data"
    images(data / "plain", 3, 1)
    (data / "phone").mkdir()
    for i in range(3):
        rotated_jpeg(data / "phone" / f"p{i}.jpg", 6, seed=i)
    proj = project(tmp_path / "p", data__source=str(data), data__images__exif_orientation=False)
    assert run_stage(proj, "prepare").returncode == 0
    row = rows(proj)["phone/p0.jpg"]
    assert (row["width"], row["height"], row["orientation"]) == (96, 48, 1)


def test_orientation_from_bytes_matches_pillow_for_all_eight(tmp_path):
    import tensorflow as tf

    from pipeline.data.input import apply_orientation, exif_orientation_of

    pixels = noise(40, 40, 0)  # square, as load_image turns it (after the resize)
    pixels[:, :10] = 255
    pixels[:6, :, 1] = 0
    for orientation in range(1, 9):
        img = Image.fromarray(pixels)
        exif = img.getexif()
        exif[0x0112] = orientation
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
        data = buffer.getvalue()
        assert int(exif_orientation_of(tf.constant(data))) == orientation
        ours = apply_orientation(tf.io.decode_jpeg(data, channels=3), tf.constant(orientation))
        theirs = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))))
        assert ours.shape == theirs.shape
        # the same turn; TF's and Pillow's JPEG decoders differ by a grey level or two
        assert np.abs(ours.numpy().astype(float) - theirs).mean() < 3
    cut = 4 + data[4] * 256 + data[5]  # after JFIF's APP0: the EXIF segment
    assert int(exif_orientation_of(tf.constant(data[:2] + data[cut:]))) == 8  # EXIF first
    others = b"\xff\xed\x00\x06abcd\xff\xe2\x00\x04zz"  # APP13, APP2 before EXIF
    assert int(exif_orientation_of(tf.constant(data[:cut] + others + data[cut:]))) == 8
    png = io.BytesIO()
    Image.fromarray(pixels).save(png, "PNG")
    assert int(exif_orientation_of(tf.constant(png.getvalue()))) == 1
    assert int(exif_orientation_of(tf.constant(data[:40]))) == 1  # cut short: no turn


# --------------------------------------------------------------------------- duplicates


def copies(data: Path) -> None:
    """Two classes of 4 originals, each with 3 exact copies and a resized thumbnail."""
    for label, seed in (("cat", 1), ("dog", 7)):
        folder = data / label
        images(folder, 4, seed)
        for i in range(4):
            original = (folder / f"img_{i}.jpg").read_bytes()
            for k in range(3):
                (folder / f"img_{i}_copy{k}.jpg").write_bytes(original)
            Image.open(folder / f"img_{i}.jpg").resize((32, 24)).save(folder / f"img_{i}_t.png")


def test_duplicates_drop_leaves_copies_out_before_the_split_and_validates(tmp_path):
    data = tmp_path / "data"
    copies(data)
    before = snapshot(data)
    proj = project(tmp_path / "p", data__source=str(data), data__images__duplicates="drop")
    run = run_stage(proj, "prepare")
    assert run.returncode == 0, run.stderr
    kept = rows(proj)
    assert sorted(kept) == [f"{c}/img_{i}.jpg" for c in ("cat", "dog") for i in range(4)]
    dropped = {p: r["reason"] for p, r in rows(proj, "dropped").items()}
    assert dropped["cat/img_0_copy1.jpg"] == "exact copy of cat/img_0.jpg"
    assert dropped["cat/img_0_t.png"].startswith("near copy (distance ")  # other bytes
    assert not any(r.startswith("exact") for p, r in dropped.items() if p.endswith("_t.png"))
    validate = run_stage(proj, "validate")
    assert validate.returncode == 0, validate.stdout + validate.stderr
    assert snapshot(data) == before


def test_duplicates_drop_across_split_folders_leaves_the_later_split_s_copy_out(tmp_path):
    data = tmp_path / "data"
    for split, n in (("train", 6), ("val", 2), ("test", 2)):
        for label, seed in (("cat", 1), ("dog", 3)):
            images(data / split / label, n, seed + {"train": 0, "val": 10, "test": 20}[split])
    (data / "test" / "cat" / "leak.jpg").write_bytes((data / "train/cat/img_0.jpg").read_bytes())
    proj = project(tmp_path / "p", data__source=str(data), data__images__duplicates="drop")
    run = run_stage(proj, "prepare")
    assert run.returncode == 0, run.stderr
    dropped = {p: r["reason"] for p, r in rows(proj, "dropped").items()}
    assert dropped == {"test/cat/leak.jpg": "exact copy of train/cat/img_0.jpg, "
                                            "leakage train -> test"}
    assert run_stage(proj, "validate").returncode == 0
