"""backbone.weights: what each setting resolves to, and that the weights are really loaded.

Every test here uses a weights file it writes itself; ImageNet's file is
imitated by a file of the same name and layout in a temporary Keras cache.
"""

from __future__ import annotations

import time
import zipfile

import h5py
import keras
import numpy as np
import pytest

from pipeline.core.hashing import file_digest
from pipeline.models import weights
from pipeline.models.backbone import build_backbone, resnet_of

SIZE = 32  # the smallest input keras.applications' ResNet accepts


@pytest.fixture(scope="module")
def source_backbone():
    keras.utils.set_random_seed(123)
    return build_backbone("resnet50", SIZE)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")


def write_legacy_h5(model: keras.Model, path) -> None:
    """Save in the Keras 2 HDF5 layout that Keras' ImageNet files use."""
    from keras.src.legacy.saving.legacy_h5_format import save_weights_to_hdf5_group

    with h5py.File(path, "w") as f:
        save_weights_to_hdf5_group(f, model)


def test_none_is_random_with_the_seed():
    assert weights.resolve("resnet50", "none", 7) == {
        "arch": "resnet50", "requested": "none", "source": "random", "seed": 7,
    }
    assert weights.weights_path({"source": "random", "seed": 7}) is None


@pytest.mark.offline_attempt
def test_imagenet_offline_fails_fast_naming_file_and_place(keras_home, no_network):
    start = time.perf_counter()
    with pytest.raises(weights.WeightsError) as err:
        weights.resolve("resnet50", "imagenet", 0)
    assert time.perf_counter() - start < 10
    message = str(err.value)
    target = keras_home / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert str(target) in message and "4d473c1dd8becc155b73f8504c6f6626" in message
    assert no_network, "the download was attempted (and refused)"
    assert not target.exists(), "no partial download is left behind"


@pytest.mark.offline_attempt
def test_auto_offline_falls_back_to_random_loudly(keras_home, capsys):
    record = weights.resolve("resnet101", "auto", 3)
    assert record == {"arch": "resnet101", "requested": "auto", "source": "random", "seed": 3}
    assert "WARNING: backbone.weights=auto fell back to RANDOM" in capsys.readouterr().err


def test_imagenet_from_keras_cache_is_loaded(keras_home, monkeypatch, source_backbone, images):
    cached = keras_home / "models" / weights.imagenet_file("resnet50")
    cached.parent.mkdir()
    write_legacy_h5(resnet_of(source_backbone), cached)
    md5 = file_digest(cached, "md5")
    monkeypatch.setattr(weights, "imagenet_md5", lambda arch: md5)

    for spec in ("imagenet", "auto"):
        record = weights.resolve("resnet50", spec, 0)
        assert record["source"] == "imagenet" and record["md5"] == md5
        assert str(keras_home) not in str(record), "no machine-specific path in the record"
    loaded = build_backbone("resnet50", SIZE, weights.weights_path(record))
    np.testing.assert_allclose(loaded(images), source_backbone(images), rtol=1e-5, atol=1e-5)


@pytest.mark.offline_attempt
def test_imagenet_with_wrong_hash_is_not_used(keras_home, monkeypatch, source_backbone):
    cached = keras_home / "models" / weights.imagenet_file("resnet50")
    cached.parent.mkdir()
    write_legacy_h5(resnet_of(source_backbone), cached)
    monkeypatch.setattr(weights, "imagenet_md5", lambda arch: "0" * 32)
    # A cached file whose hash is wrong would be downloaded again; offline that fails.
    with pytest.raises(weights.WeightsError, match="has md5 .*, not 0{32}.*cannot be reached"):
        weights.resolve("resnet50", "imagenet", 0)
    assert weights.resolve("resnet50", "auto", 0)["source"] == "random"


@pytest.mark.parametrize("suffix", [".weights.h5", ".h5"])
def test_weights_file_is_hashed_and_loaded(tmp_path, source_backbone, images, suffix):
    path = tmp_path / f"mine{suffix}"
    if suffix == ".weights.h5":
        resnet_of(source_backbone).save_weights(path)
    else:
        write_legacy_h5(resnet_of(source_backbone), path)
    record = weights.resolve("resnet50", str(path), 0)
    assert record["source"] == "file" and record["sha256"] == file_digest(path)
    loaded = build_backbone("resnet50", SIZE, weights.weights_path(record))
    np.testing.assert_allclose(loaded(images), source_backbone(images), rtol=1e-5, atol=1e-5)

    path.write_bytes(b"changed")
    with pytest.raises(weights.WeightsError, match="missing or changed"):
        weights.weights_path(record)


def _keras_weights(path, value: float = 0.0) -> None:
    """A file laid out as model.save_weights writes one (its ``layers`` group)."""
    with h5py.File(path, "w") as h5:
        h5.create_group("layers/dense/vars")["0"] = np.full((4, 2), value)


def test_a_scratch_entry_s_weights_file_is_recorded_by_its_contents(tmp_path):
    """The record scratch@NAME depends on changes when the file's bytes do, the name kept."""
    path = tmp_path / "start.weights.h5"
    assert weights.scratch_record("wrn", "none")["source"] == "random"
    _keras_weights(path, 1.0)
    first = weights.scratch_record("wrn", str(path))
    assert first == {"requested": str(path), "source": "file", "sha256": file_digest(path)}
    _keras_weights(path, 2.0)
    assert weights.scratch_record("wrn", str(path))["sha256"] != first["sha256"]


def test_a_file_no_network_loads_is_refused_by_the_weights_stages(tmp_path):
    """What the scratch_weights stage (every `dvc repro`) and the params stage refuse before
    any stage removes a model: one line naming the key and the file, without TensorFlow."""
    _keras_weights(tmp_path / "good.weights.h5")
    full = (tmp_path / "good.weights.h5").read_bytes()
    files = {"random.weights.h5": np.random.default_rng(0).bytes(4000),
             "empty.weights.h5": b"", "cut.weights.h5": full[: len(full) // 2],
             "random.npz": np.random.default_rng(1).bytes(4000)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "folder.weights.h5").mkdir()
    with zipfile.ZipFile(tmp_path / "zip.weights.h5", "w") as z:  # a .keras model, renamed
        z.writestr("config.json", "{}")
    with zipfile.ZipFile(tmp_path / "noarrays.npz", "w") as z:
        z.writestr("readme.txt", "no arrays")
    with h5py.File(tmp_path / "plain.weights.h5", "w") as h5:
        h5["x"] = np.zeros(3)
    expected = {
        "random.weights.h5": "is not a readable HDF5 weights file: file signature not found",
        "empty.weights.h5": "is not a readable HDF5 weights file",
        "cut.weights.h5": "is not a readable HDF5 weights file: truncated file",
        "random.npz": "is not an .npz file (File is not a zip file)",
        "missing.weights.h5": "does not exist",
        "folder.weights.h5": "is a folder, not a weights file",
        "zip.weights.h5": "(a zip archive: a .keras model? save its weights with "
                          "model.save_weights)",
        "noarrays.npz": "is a zip archive with no arrays, not an .npz",
        "plain.weights.h5": "is an HDF5 file but not Keras weights",
    }
    for name, says in expected.items():
        spec = str(tmp_path / name)
        with pytest.raises(weights.WeightsError) as err:
            weights.scratch_record("wrn", spec)
        assert str(err.value).startswith(f"scratch.wrn.weights: {spec!r} ") or \
            str(err.value).startswith(f"scratch.wrn.weights: weights file {spec!r} "), err.value
        assert says in str(err.value) and "\n" not in str(err.value), err.value
    assert weights.check_weights_file("k", str(tmp_path / "good.weights.h5")).is_file()
    np.savez(tmp_path / "good.npz", a=np.zeros(2))
    assert weights.check_weights_file("k", str(tmp_path / "good.npz")).is_file()


def test_the_scratch_stage_trains_only_on_the_file_its_record_holds(tmp_path, monkeypatch):
    """scratch@NAME reads its weights file by name: a file that is not the one hashed into
    its record (what dvc.lock holds) stops the stage, naming the key, before training."""
    from pipeline.core.io import write_json

    monkeypatch.chdir(tmp_path)
    weights.check_scratch_weights("wrn", "none")  # nothing to check
    (tmp_path / "w.weights.h5").write_bytes(b"first weights")
    with pytest.raises(weights.WeightsError, match=r"scratch\.wrn\.weights: .* does not record"):
        weights.check_scratch_weights("wrn", "w.weights.h5")  # never hashed
    record = tmp_path / "data/scratch_weights/wrn.json"
    record.parent.mkdir(parents=True)
    write_json(record, {"requested": "w.weights.h5", "source": "file",
                        "sha256": file_digest(tmp_path / "w.weights.h5")})
    weights.check_scratch_weights("wrn", "w.weights.h5")  # the hashed file: trains
    (tmp_path / "w.weights.h5").write_bytes(b"other weights")
    with pytest.raises(weights.WeightsError, match="changed since the scratch_weights stage"):
        weights.check_scratch_weights("wrn", "w.weights.h5")


def test_bad_specs_name_the_value(tmp_path):
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.resolve("resnet50", str(tmp_path / "nope.weights.h5"), 0)
    (tmp_path / "bad.h5").write_bytes(b"not HDF5")
    with pytest.raises(weights.WeightsError, match=r"^backbone\.weights: .*bad\.h5' is not a "
                                                   "readable HDF5 weights file"):
        weights.resolve("resnet50", str(tmp_path / "bad.h5"), 0)
    with pytest.raises(weights.WeightsError, match="not auto, imagenet, none"):
        weights.resolve("resnet50", "imagnet", 0)


def test_random_init_is_reproducible(images):
    outputs = []
    for _ in range(2):
        keras.utils.set_random_seed(5)
        outputs.append(np.asarray(build_backbone("resnet50", SIZE)(images)))
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_the_md5_table_is_keras_own():
    from keras.src.applications.resnet import WEIGHTS_HASHES

    assert {arch: WEIGHTS_HASHES[arch][1] for arch in weights.IMAGENET_MD5} == weights.IMAGENET_MD5


@pytest.mark.offline_attempt  # resnet101's 'auto' asks for the download, and is refused
def test_the_weights_check_starts_no_tensorflow(keras_home):
    """A cached file is checked, and an offline machine answered, without TensorFlow's
    seconds of start-up: the check runs on every `dvc repro`."""
    import subprocess
    import sys

    cached = keras_home / "models" / weights.imagenet_file("resnet50")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"stand-in weights")
    code = (
        "import sys\n"
        "from pipeline.core.hashing import file_digest\n"
        "from pipeline.models import weights\n"
        f"weights.IMAGENET_MD5['resnet50'] = file_digest({str(cached)!r}, 'md5')\n"
        "found = weights.resolve('resnet50', 'imagenet', 0)\n"
        "offline = weights.resolve('resnet101', 'auto', 0)\n"
        "print(found['source'], offline['source'], 'tensorflow' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-3:] == ["imagenet", "random", "False"]
