"""backbone.weights: what each setting resolves to, and that the weights are really loaded.

Every test here uses a weights file it writes itself; ImageNet's file is
imitated by a file of the same name and layout in a temporary Keras cache.
"""

from __future__ import annotations

import time

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


def test_a_scratch_entry_s_weights_file_is_recorded_by_its_contents(tmp_path):
    """The record scratch@NAME depends on changes when the file's bytes do, the name kept."""
    path = tmp_path / "start.weights.h5"
    assert weights.scratch_record("none")["source"] == "random"
    assert weights.scratch_record(str(path)) == {"requested": str(path), "source": "missing"}
    path.write_bytes(b"first weights")
    first = weights.scratch_record(str(path))
    assert first == {"requested": str(path), "source": "file", "sha256": file_digest(path)}
    path.write_bytes(b"other weights")
    assert weights.scratch_record(str(path))["sha256"] != first["sha256"]


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
    write_json(record, weights.scratch_record("w.weights.h5"))
    weights.check_scratch_weights("wrn", "w.weights.h5")  # the hashed file: trains
    (tmp_path / "w.weights.h5").write_bytes(b"other weights")
    with pytest.raises(weights.WeightsError, match="changed since the scratch_weights stage"):
        weights.check_scratch_weights("wrn", "w.weights.h5")


def test_bad_specs_name_the_value(tmp_path):
    with pytest.raises(weights.WeightsError, match="does not exist"):
        weights.resolve("resnet50", str(tmp_path / "nope.weights.h5"), 0)
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
