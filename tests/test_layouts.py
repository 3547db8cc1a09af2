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
    # Which folder became which split, plainly, on one line (no raw dict).
    note = " (the held-out folder: results are reported on it)" if held_out == "val" else ""
    assert ("\nsplits: train 16 and val 4 from train/ (val: a stratified 0.15 of it, "
            f"data.split.val), test 6 from {held_out}/{note}\n") in run.stdout, run.stdout
    assert "{'" not in run.stdout
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


def stored(path: Path, size: int) -> np.ndarray:
    """The picture as its pixels are stored (sideways for a phone photo), resized."""
    import tensorflow as tf

    pixels = np.asarray(Image.open(path).convert("RGB"))
    return tf.image.resize(pixels, (size, size), antialias=True).numpy()


def tiny_conv(size: int, classes: int):
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(4, 3, activation="relu")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


def stage_module(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"{name}_stage", STAGES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("switch", [True, False], ids=["on", "off"])
def test_exif_orientation_switch_holds_in_every_path(tmp_path, monkeypatch, switch):
    """data.images.exif_orientation: on, every path turns a phone photo upright; off, every
    path sees the stored (sideways) pixels. Prepare's sizes, the evaluation and training
    input, the features stage and the head's card, evaluate (as the model's card says),
    predict and Grad-CAM."""
    import json

    import pipeline.runtimes.select as select
    from pipeline.core.params import load
    from pipeline.data.input import image_dataset, split_arrays
    from pipeline.evaluation import saliency
    from pipeline.evaluation.inference import Predictor, predict
    from pipeline.models.features import Features
    from pipeline.models.trained import TrainedModel
    from pipeline.runtimes.forward import Forward
    from pipeline.training.inputs import Splits, datasets

    data = tmp_path / "data"
    images(data / "plain", 4, 1)
    (data / "phone").mkdir()
    for i, orientation in enumerate((6, 8, 6, 8)):
        rotated_jpeg(data / "phone" / f"p{i}.jpg", orientation, seed=i)
    size = 32
    proj = project(tmp_path / "p", data__source=str(data), data__images__exif_orientation=switch,
                   data__split={"train": 0.5, "val": 0.25, "test": 0.25},
                   backbone__image_size=size, inference__runtime="tensorflow")
    assert run_stage(proj, "prepare").returncode == 0
    got = rows(proj)
    for i, orientation in enumerate((6, 8, 6, 8)):
        row = got[f"phone/p{i}.jpg"]
        want = (48, 96, orientation) if switch else (96, 48, 1)
        assert (row["width"], row["height"], row["orientation"]) == want
    assert got["plain/img_0.jpg"]["orientation"] == 1
    if switch:
        assert run_stage(proj, "validate").returncode == 0  # the column passes the suite

    frame = manifest.read(proj / "data/manifest.csv")
    names = manifest.classes(frame)
    everything = frame.assign(split="test")  # every image through each path
    files, labels = split_arrays(everything, data, "test", names)
    upright_ = {f: upright(Path(f), size) for f in files}
    stored_ = {f: stored(Path(f), size) for f in files}
    want, other = (upright_, stored_) if switch else (stored_, upright_)
    pictures = np.stack([want[f] for f in files])
    phones = {i for i, f in enumerate(files) if "/phone/" in f}
    # the check can fail: a phone photo's stored pixels are far from its upright picture
    assert min(np.abs(upright_[files[i]] - stored_[files[i]]).mean() for i in phones) > 20

    def check(name: str, batch: np.ndarray, expect_phone: bool = True) -> None:
        """Each image is the one its path should see: the nearest of the wanted pictures
        within about a grey level (TF's resize of TF's decode against Pillow's decode)."""
        dist = np.abs(np.asarray(batch)[:, None] - pictures[None]).mean(axis=(2, 3, 4))
        assert dist.min(axis=1).max() < 3, name
        if expect_phone:
            assert phones & set(dist.argmin(axis=1).tolist()), f"{name}: no phone photo"

    check("evaluation input",
          np.concatenate([x for x, _ in image_dataset(files, labels, size, 64,
                                                      exif_orientation=switch)]))
    recipe = load(proj / "params.yaml").finetune["resnet50"]
    plain = recipe.model_copy(update={"augment": recipe.augment.model_copy(update={
        "flip": False, "crop": False, "color_jitter": 0.0, "mixup_alpha": 0.0})})
    train, val = datasets(Splits((files, labels), (files, labels), names, switch), plain, size,
                          0, 64)
    check("training input", next(iter(train.dataset(0, 1)))[0])
    check("validation input", np.concatenate([x for x, _ in val]))

    seen: list[np.ndarray] = []

    def capture(batch):
        seen.append(np.asarray(batch))
        return np.full((len(batch), len(names)), 1 / len(names))

    forward = Forward(capture, "tensorflow", "float32")

    # Whatever runtime would run the network, each path hands it the decoded batches.
    monkeypatch.setattr(select, "compile_forward", lambda model, *args, **kw: forward)
    decode = {"classes": names, "image_size": size, "exif_orientation": switch}
    predict(Predictor(TrainedModel(None, decode), "capture"), list(files), 64, 1)
    check("predict", np.concatenate(seen))

    captured: list[np.ndarray] = []
    monkeypatch.setattr(saliency, "grad_cam",
                        lambda model, batch: captured.append(batch) or np.zeros(batch.shape[:3]))
    saliency.saliency_overlays(tiny_conv(size, len(names)), dict(enumerate(files)), size,
                               exif_orientation=switch)
    check("Grad-CAM", np.concatenate(captured))

    # The stages, in this process: a backbone whose features are the pixels themselves.
    import keras

    import pipeline.models.backbone as backbone

    monkeypatch.chdir(proj)
    (proj / "data/weights.json").write_text(json.dumps({"arch": "resnet50", "source": "random"}))
    pixels = keras.Sequential([keras.Input((size, size, 3)), keras.layers.Flatten()])
    monkeypatch.setattr(backbone, "build_backbone", lambda *args, **kw: pixels)
    monkeypatch.setattr(select, "compile_forward", lambda model, *args, **kw: None)
    stage_module("features").main(load())
    assert json.loads(Path("data/features/info.json").read_text())["exif_orientation"] is switch
    feats = [Features.load(Path(f"data/features/{s}.npz")) for s in ("train", "val", "test")]
    check("features stage", np.concatenate([f.features for f in feats]).reshape(-1, size, size, 3))
    stage_module("train_head").main(load())  # the head's card carries its features' decode
    assert json.loads(Path("models/head.json").read_text())["exif_orientation"] is switch

    # evaluate_scratch@wrn decodes as the model's card says, whatever params.yaml says now.
    tiny_conv(size, len(names)).save("models/wrn.keras")
    Path("models/wrn.json").write_text(json.dumps({
        "name": "wrn", "input": "image", "image_size": size, "classes": names,
        "exif_orientation": switch}))
    write_params(proj, {"validate.min_per_class": 1, "data.source": str(data),
                        "data.images.exif_orientation": not switch,
                        "inference.runtime": "tensorflow"})
    seen.clear()
    monkeypatch.setattr(select, "compile_forward", lambda model, *args, **kw: forward)
    stage_module("evaluate").main(load(), "wrn")
    check("evaluate (test and val)", np.concatenate(seen))


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


def _tagged(fmt: str, orientation: int | None) -> Image.Image:
    """A small picture saved as ``fmt`` with EXIF Orientation ``orientation`` (None: no
    tag), opened again as prepare opens it."""
    img = Image.fromarray(noise(30, 20, 0))
    exif = img.getexif()
    if orientation is not None:
        exif[0x0112] = orientation
    extra = {"save_all": True, "append_images": [img]} if fmt == "MPO" else {}
    buffer = io.BytesIO()
    img.save(buffer, fmt, exif=exif.tobytes(), **extra)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_prepare_reads_a_jpeg_s_orientation_and_nothing_else():
    """Prepare and the contact sheets turn by what the decoder reads: a JPEG's tag 1-8
    (a camera's multi-picture JPEG too), and no turn for no tag, a value out of range, a
    PNG's tag or an EXIF block Pillow cannot read."""
    from pipeline.core.image_formats import jpeg_orientation

    for orientation in range(1, 9):
        assert jpeg_orientation(_tagged("JPEG", orientation)) == orientation
    mpo = _tagged("MPO", 6)
    assert mpo.format == "MPO" and jpeg_orientation(mpo) == 6
    for orientation in (None, 0, 9, 300):
        assert jpeg_orientation(_tagged("JPEG", orientation)) == 1, orientation
    assert jpeg_orientation(_tagged("PNG", 6)) == 1

    broken = _tagged("JPEG", 6)

    def unreadable():
        raise SyntaxError("not a TIFF file")

    broken.getexif = unreadable
    assert jpeg_orientation(broken) == 1


def test_a_model_card_s_orientation_says_whether_its_model_was_trained_on_turned_photos():
    """A card from before the key: every model then was trained turned. Anything but
    true or false is refused naming the key and the value."""
    from pipeline.models.card import orientation_of

    assert orientation_of({}) is True
    assert orientation_of({"exif_orientation": False}) is False
    assert orientation_of({"exif_orientation": True}) is True
    with pytest.raises(ValueError) as err:
        orientation_of({"exif_orientation": "yes"})
    assert str(err.value) == "model card: exif_orientation must be true or false (got 'yes')"


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


@pytest.mark.parametrize("switch", [True, False])
def test_contact_sheets_draw_a_photo_as_the_network_sees_it(tmp_path, switch):
    """The data sheet and a model's mistakes sheet turn a phone photo (stored 60 wide and
    30 high, tagged "rotate 90") upright when data.images.exif_orientation is on, and draw
    it as stored when it is off: the picture a person checks is the one the network got."""
    import pandas as pd

    from pipeline.core.contact_sheets import THUMB, _thumbnail
    from pipeline.data.pictures import draw_samples
    from pipeline.evaluation.mistakes import draw_mistakes

    photo = tmp_path / "phone.jpg"
    img = Image.new("RGB", (60, 30), (200, 30, 30))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(photo, "JPEG", quality=95, exif=exif.tobytes())
    thumb = np.asarray(_thumbnail(photo, THUMB, switch))
    red = thumb[..., 0].astype(int) - thumb[..., 1] > 100
    tall, wide = red.any(axis=1).sum(), red.any(axis=0).sum()
    assert (tall > wide) == switch, (tall, wide)  # upright: 30 wide, 60 high

    table = pd.DataFrame({"path": ["phone.jpg"], "label": ["a"], "split": ["train"],
                          "predicted": ["b"], "confidence": [0.9], "correct": [False]})
    sheets = {}
    for turn in (True, False):
        draw_samples(table, tmp_path, tmp_path / f"samples-{turn}.png", turn)
        draw_mistakes(table, tmp_path, "m", tmp_path / f"mistakes-{turn}.png", 4,
                      exif_orientation=turn)
        sheets[turn] = [(tmp_path / f"{kind}-{turn}.png").read_bytes()
                        for kind in ("samples", "mistakes")]
    assert all(a != b for a, b in zip(sheets[True], sheets[False], strict=True))


def test_contact_sheets_leave_a_png_s_exif_chunk_alone_as_the_decoder_does(tmp_path):
    """A PNG may carry an eXIf chunk with an Orientation; the pipeline's decoder reads the
    tag from JPEGs only, so the network sees the stored pixels, and the contact sheet
    must draw them too, even with data.images.exif_orientation on."""
    from PIL import ImageOps

    from pipeline.core.contact_sheets import THUMB, _thumbnail
    from pipeline.data.input import exif_orientation_of

    photo = tmp_path / "tagged.png"
    img = Image.new("RGB", (60, 30), (200, 30, 30))
    exif = img.getexif()
    exif[0x0112] = 6
    img.save(photo, "PNG", exif=exif.tobytes())
    with Image.open(photo) as opened:  # the tag is there: Pillow alone would turn it
        assert ImageOps.exif_transpose(opened).size == (30, 60)
    assert int(exif_orientation_of(photo.read_bytes())) == 1  # the decoder does not
    thumb = np.asarray(_thumbnail(photo, THUMB, True))
    red = thumb[..., 0].astype(int) - thumb[..., 1] > 100
    assert red.any(axis=0).sum() > red.any(axis=1).sum()  # drawn as stored: wide
