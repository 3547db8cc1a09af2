"""Resolve ``backbone.weights`` into a record of the weights actually used.

The record (``metrics/weights.json``) is both a metric, so ``dvc metrics show``
says whether a run used ImageNet weights or random ones, and a dependency of
every stage that builds the backbone, so that weights appearing later (first
run offline, next one online) re-run everything downstream. It holds no
machine-specific paths and no timestamps: the same weights give the same bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

from pipeline.core.errors import PipelineError
from pipeline.core.hashing import file_digest
from pipeline.core.net import socket_timeout
from pipeline.core.params import Arch

BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


class WeightsError(PipelineError, RuntimeError):
    """The requested weights cannot be had; the message says what to do."""


def imagenet_file(arch: Arch) -> str:
    """Keras' file name for the ImageNet weights without the classifier top."""
    return f"{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def imagenet_md5(arch: Arch) -> str:
    from keras.src.applications.resnet import WEIGHTS_HASHES

    return WEIGHTS_HASHES[arch][1]  # (with top, without top)


def keras_cache_dir() -> Path:
    """Where ``keras.utils.get_file(cache_subdir="models")`` keeps downloads."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def keras_cached_file(fname: str, url: str, md5: str) -> Path:
    """A file in Keras' cache (``$KERAS_HOME/models``), downloaded and md5-checked by Keras'
    own ``get_file`` if missing; WeightsError naming the file to place when offline."""
    import keras

    try:
        with socket_timeout():  # urlretrieve has no timeout of its own
            return Path(keras.utils.get_file(
                fname, url,
                cache_dir=str(keras_cache_dir().parent),  # read now: Keras reads KERAS_HOME once
                cache_subdir="models", file_hash=md5, hash_algorithm="md5",
            ))
    except Exception as err:  # noqa: BLE001 - get_file wraps URL errors in plain Exception
        raise WeightsError(
            f"{fname} is not cached and cannot be downloaded ({err}).\n"
            f"  On an offline machine, copy it (md5 {md5}) from a machine that has it\n"
            f"  (or from {url}) to {keras_cache_dir() / fname}"
        ) from None


def fetch_imagenet(arch: Arch, md5: str | None = None) -> Path:
    """Path of the cached ImageNet weights, downloaded and hash-checked by Keras if needed.

    Raises WeightsError quickly when the file is neither cached nor downloadable,
    naming the file to place and where.
    """
    fname = imagenet_file(arch)
    try:
        return keras_cached_file(fname, BASE_URL + fname, md5 or imagenet_md5(arch))
    except WeightsError as err:
        raise WeightsError(
            f"ImageNet weights for {arch}: {err}\n"
            "  or set backbone.weights to a weights file path, or to none for random init."
        ) from None


def resolve(arch: Arch, spec: str, seed: int) -> dict:
    """Turn ``backbone.weights`` (auto | imagenet | none | path) into a weights record."""
    record: dict = {"arch": arch, "requested": spec}
    if spec == "none":
        return record | {"source": "random", "seed": seed}
    if spec in ("imagenet", "auto"):
        try:
            path = fetch_imagenet(arch)
        except WeightsError as err:
            if spec == "imagenet":
                raise
            print(
                f"\n{'!' * 78}\nWARNING: backbone.weights=auto fell back to RANDOM initialisation "
                f"(seed {seed}).\n{err}\n{'!' * 78}\n",
                flush=True,
            )
            return record | {"source": "random", "seed": seed}
        return record | {"source": "imagenet", "file": path.name, "md5": imagenet_md5(arch)}
    path = Path(spec)
    if not (path.name.endswith(".weights.h5") or path.suffix == ".h5"):
        raise WeightsError(
            f"backbone.weights: {spec!r} is not auto, imagenet, none or a .weights.h5/.h5 file"
        )
    if not path.is_file():
        raise WeightsError(f"backbone.weights: file {spec!r} does not exist")
    return record | {"source": "file", "file": spec, "sha256": file_digest(path)}


def weights_path(record: dict) -> Path | None:
    """The file to load for a weights record, checked against its hash; None for random."""
    source = record["source"]
    if source == "random":
        return None
    if source == "imagenet":
        return fetch_imagenet(record["arch"], record["md5"])
    path = Path(record["file"])
    if not path.is_file() or file_digest(path) != record["sha256"]:
        raise WeightsError(
            f"weights file {record['file']} is missing or changed since the weights stage "
            "resolved it; run `dvc repro` again"
        )
    return path
