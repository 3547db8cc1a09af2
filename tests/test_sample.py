"""The demo data set: reproducible to the byte, laid out like user data, hard but learnable."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import repo_params, run_stage, write_params
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from pipeline.data import sample
from pipeline.data.sample import CLASSES, generate


def _digests(root: Path) -> dict[str, str]:
    """md5 of every file under ``root``, keyed by relative path."""
    return {
        p.relative_to(root).as_posix(): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _gray(path: Path, side: int) -> np.ndarray:
    image = Image.open(path).convert("L").resize((side, side), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0


def _raw_pixels(path: Path) -> np.ndarray:
    """16x16 grayscale pixels: what a linear model sees without any invariance."""
    return _gray(path, 16).ravel()


def _radial_spectrum(path: Path) -> np.ndarray:
    """Log power spectrum averaged over rings: blind to position, rotation and contrast sign,
    so it keeps only texture and outline frequencies, which is what tells the classes apart."""
    g = _gray(path, 64)
    g = (g - g.mean()) / (g.std() + 1e-6)
    power = np.abs(np.fft.fftshift(np.fft.fft2(g))) ** 2
    yy, xx = np.indices(power.shape) - 32
    ring = np.hypot(xx, yy).astype(int).ravel()
    sums = np.bincount(ring, power.ravel())[:32]
    return np.log1p(sums / np.bincount(ring)[:32])


def _holdout_accuracy(root: Path, features) -> float:
    """Logistic regression trained on half of each class, scored on the other half."""
    x, y = [], []
    for label, name in enumerate(CLASSES):
        for path in sorted((root / name).glob("*.jpg")):
            x.append(features(path))
            y.append(label)
    x_tr, x_te, y_tr, y_te = train_test_split(
        np.array(x), np.array(y), test_size=0.5, stratify=y, random_state=0
    )
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    return float(model.fit(x_tr, y_tr).score(x_te, y_te))


@pytest.fixture(scope="module")
def learn_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("learn") / "sample"
    generate(out, 40, 64, seed=0)
    return out


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, 4, 48, seed=7, jpeg_quality=85)
    generate(b, 4, 48, seed=7, jpeg_quality=85)
    assert _digests(a) == _digests(b)
    assert len(_digests(a)) == 4 * len(CLASSES)


def test_image_does_not_depend_on_count(tmp_path: Path) -> None:
    """Each image has its own stream: drawing more images leaves the first ones as they were."""
    generate(tmp_path / "few", 2, 48, seed=3)
    generate(tmp_path / "many", 5, 48, seed=3)
    few, many = _digests(tmp_path / "few"), _digests(tmp_path / "many")
    assert few.items() <= many.items()


def test_layout_of_user_data(tmp_path: Path) -> None:
    out = tmp_path / "sample"
    counts = generate(out, 3, 72, seed=1)
    assert counts == {name: 3 for name in CLASSES}
    assert len(CLASSES) == 5
    assert sorted(p.name for p in out.iterdir()) == sorted(CLASSES)
    for name in CLASSES:
        files = sorted((out / name).iterdir())
        assert [f.name for f in files] == [f"{name}_{i:04d}.jpg" for i in (1, 2, 3)]
        for f in files:
            with Image.open(f) as image:
                assert image.format == "JPEG"
                assert image.mode == "RGB"
                assert image.size == (72, 72)
                image.load()  # decodes the whole file, not just the header
    assert not list(tmp_path.glob(".sample.*")), "temporary folder left behind"


def test_different_seeds_different_images(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate(a, 3, 48, seed=0)
    generate(b, 3, 48, seed=1)
    da, db = _digests(a), _digests(b)
    assert da.keys() == db.keys()
    assert all(da[k] != db[k] for k in da)


def test_images_within_a_class_vary(learn_set: Path) -> None:
    pixels = np.stack([_gray(p, 16) for p in sorted((learn_set / "circle").glob("*.jpg"))])
    assert len({hashlib.md5(p.tobytes()).hexdigest() for p in pixels}) == len(pixels)
    assert float(pixels.std(axis=0).mean()) > 0.1  # not one template with a little noise


def test_raw_pixels_are_not_enough(learn_set: Path) -> None:
    """Random position, colour and contrast leave a linear model on raw pixels near chance
    (measured 0.13-0.29, mean 0.21, over 20 seeds): the task is not solved by a pixel template."""
    assert _holdout_accuracy(learn_set, _raw_pixels) < 0.45


def test_classes_are_learnable_but_not_trivially(learn_set: Path) -> None:
    """A linear model on a fixed, invariant feature (ring-averaged power spectrum) finds the
    classes well above chance (20%) yet far from perfect (measured 0.58-0.71, mean 0.64,
    over 20 seeds): the signal is there, but a CNN has to learn to read it."""
    accuracy = _holdout_accuracy(learn_set, _radial_spectrum)
    assert 0.40 < accuracy < 0.90


def test_rejects_bad_arguments(tmp_path: Path) -> None:
    for kwargs in (
        {"images_per_class": 0},
        {"image_size": 8},
        {"jpeg_quality": 0},
        {"jpeg_quality": 101},
    ):
        args = {"images_per_class": 1, "image_size": 32, "seed": 0} | kwargs
        with pytest.raises(ValueError):
            generate(tmp_path / "out", **args)
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_previous_output_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sample"
    generate(out, 2, 32, seed=0)
    before = _digests(out)

    real_write = sample._write_jpeg
    calls = 0

    def failing_write(image: Image.Image, path: Path, quality: int) -> None:
        nonlocal calls
        calls += 1
        if calls == 7:  # in the fourth class of two images each
            raise OSError("disk full")
        real_write(image, path, quality)

    monkeypatch.setattr(sample, "_write_jpeg", failing_write)
    with pytest.raises(OSError, match="disk full"):
        generate(out, 2, 32, seed=1)
    assert calls == 7
    assert _digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]

    fresh = tmp_path / "fresh"
    calls = 0
    with pytest.raises(OSError, match="disk full"):
        generate(fresh, 2, 32, seed=1)
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample"]


def test_stage_script_writes_data_sample(tmp_path: Path) -> None:
    """`python stages/sample.py` from the project root reads params.yaml and fills data/sample."""
    write_params(tmp_path, {"seed": 5, "sample.images_per_class": 2, "sample.image_size": 32,
                            "sample.jpeg_quality": 80})
    done = run_stage(tmp_path, "sample")
    assert done.returncode == 0, done.stderr
    assert "10 images of 5 classes" in done.stdout
    expected = tmp_path / "expected"
    generate(expected, 2, 32, seed=5, jpeg_quality=80)
    assert _digests(tmp_path / "data" / "sample") == _digests(expected)


def test_stage_script_reports_bad_params(tmp_path: Path) -> None:
    raw = repo_params()
    raw["sample"]["images_per_clas"] = raw["sample"].pop("images_per_class")  # a typo
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = run_stage(tmp_path, "sample")
    assert done.returncode == 2
    assert "sample.images_per_clas: unknown key" in done.stderr
    assert "sample.images_per_class: missing" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "data").exists()
