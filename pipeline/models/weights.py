"""Resolve ``backbone.weights`` into a record of the weights actually used.

The record (``data/weights.json``) is a dependency of every stage that builds the
backbone, so that weights appearing later (first run offline, next one online)
re-run everything downstream; the features stage's run facts (reports/runs/features.json)
repeat its ``source``, and the report's banner says whether a run used ImageNet weights or
random ones. It holds no
machine-specific paths and no timestamps: the same weights give the same bytes.

A scratch entry's own weights file gets a record of the same kind
(``data/scratch_weights/NAME.json``, the scratch_weights stage), which its stage depends on.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
import zipfile
from pathlib import Path

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.core.hashing import file_digest
from pipeline.core.io import read_json
from pipeline.core.net import socket_timeout
from pipeline.core.params import Arch

log = logging.getLogger(__name__)

BASE_URL = "https://storage.googleapis.com/tensorflow/keras-applications/resnet/"


class WeightsError(PipelineError, RuntimeError):
    """The requested weights cannot be had; the message says what to do."""


def imagenet_file(arch: Arch) -> str:
    """Keras' file name for the ImageNet weights without the classifier top."""
    return f"{arch}_weights_tf_dim_ordering_tf_kernels_notop.h5"


# md5 of each file above, as keras.src.applications.resnet.WEIGHTS_HASHES has it (a test
# checks the copy): known here, the weights check needs no TensorFlow start-up.
IMAGENET_MD5 = {
    "resnet50": "4d473c1dd8becc155b73f8504c6f6626",
    "resnet101": "88cf7a10940856eca736dc7b7e228a21",
    "resnet152": "ee4c566cf9a93f14d82f913c2dc6dd0c",
}


def imagenet_md5(arch: Arch) -> str:
    return IMAGENET_MD5[arch]


def _reachable(url: str) -> bool:
    """Whether ``url``'s host resolves: offline, the answer comes in milliseconds, before
    Keras (and TensorFlow, seconds to start) is imported for a download that cannot work."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        with socket_timeout(5):
            socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


def keras_cache_dir() -> Path:
    """Where ``keras.utils.get_file(cache_subdir="models")`` keeps downloads."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


def keras_cached_file(fname: str, url: str, md5: str) -> Path:
    """A file in Keras' cache (``$KERAS_HOME/models``), downloaded and md5-checked by Keras'
    own ``get_file`` if missing; WeightsError naming the file to place when offline."""
    import keras
    from filelock import FileLock

    cache = keras_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    try:
        # get_file writes the download in place: two experiments of a queue fetching the
        # same file at once would interleave their bytes. One at a time; the second then
        # finds the file and checks its hash.
        with FileLock(cache / f".{fname}.lock"), socket_timeout():  # urlretrieve: no timeout
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
    md5 = md5 or imagenet_md5(arch)
    cached = keras_cache_dir() / fname
    found = file_digest(cached, "md5") if cached.is_file() else None
    if found == md5:
        return cached  # what Keras' get_file would return, without starting TensorFlow
    if not _reachable(BASE_URL):
        where = ("is not in Keras' cache" if found is None else
                 f"in Keras' cache has md5 {found}, not {md5} (a partial or other file)")
        raise WeightsError(
            f"ImageNet weights for {arch}: {fname} {where}, and "
            f"{urllib.parse.urlsplit(BASE_URL).hostname} cannot be reached (offline?).\n"
            f"  Copy it (md5 {md5}) from a machine that has it (or from {BASE_URL}{fname})\n"
            f"  to {cached},\n"
            "  or set backbone.weights to a weights file path, or to none for random init."
        )
    try:
        return keras_cached_file(fname, BASE_URL + fname, md5)
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
            log.warning(
                f"\n{'!' * 78}\nWARNING: backbone.weights=auto fell back to RANDOM initialisation "
                f"(seed {seed}).\n{err}\n{'!' * 78}\n")
            return record | {"source": "random", "seed": seed}
        return record | {"source": "imagenet", "file": path.name, "md5": imagenet_md5(arch)}
    path = Path(spec)
    if not (path.name.endswith(".weights.h5") or path.suffix == ".h5"):
        raise WeightsError(
            f"backbone.weights: {spec!r} is not auto, imagenet, none or a .weights.h5/.h5 file"
        )
    check_weights_file("backbone.weights", spec)
    return record | {"source": "file", "file": spec, "sha256": file_digest(path)}


def check_weights_file(key: str, spec: str) -> Path:
    """Refuse, in one line naming ``key`` and the file, what no network can load: a path
    that is missing or a folder; an HDF5 file cut short, or that is no HDF5 (random bytes,
    a .keras zip); a ``.weights.h5`` without Keras' ``layers`` group; an ``.npz`` that is
    not a zip of arrays. Cheap (h5py reads the file's index; no TensorFlow), so the
    always-changed weights stages run it before any stage removes a model. Whether the
    weights fit the network (depth, width, classes) only loading them can tell."""
    path = Path(spec)
    if path.is_dir():
        raise WeightsError(f"{key}: {spec!r} is a folder, not a weights file")
    if not path.is_file():
        raise WeightsError(f"{key}: weights file {spec!r} does not exist ({path.absolute()})")
    if path.suffix == ".npz":
        try:
            with zipfile.ZipFile(path) as npz:
                arrays = [n for n in npz.namelist() if n.endswith(".npy")]
        except (OSError, zipfile.BadZipFile) as err:
            raise WeightsError(f"{key}: {spec!r} is not an .npz file ({err})") from None
        if not arrays:
            raise WeightsError(f"{key}: {spec!r} is a zip archive with no arrays, not an .npz")
        return path
    import h5py  # Keras' own dependency; no TensorFlow start-up

    try:
        with h5py.File(path, "r") as h5:
            keras_weights = "layers" in h5
    except OSError as err:
        reason = str(err).rpartition("(")[2].rstrip(")") or str(err)
        kind = " (a zip archive: a .keras model? save its weights with model.save_weights)" \
            if zipfile.is_zipfile(path) else ""
        raise WeightsError(f"{key}: {spec!r} is not a readable HDF5 weights file: "
                           f"{reason}{kind}") from None
    if path.name.endswith(".weights.h5") and not keras_weights:
        raise WeightsError(f"{key}: {spec!r} is an HDF5 file but not Keras weights (no "
                           "'layers' group, as model.save_weights writes)")
    return path


def scratch_record(name: str, spec: str) -> dict:
    """What scratch entry ``name``'s ``weights`` names, as DVC should track it: the file's
    hash. The entry's stage depends on this record, so a weights file replaced in place
    (the same name, other contents) re-runs it. A file that is missing or no weights file
    at all is refused here, naming ``scratch.NAME.weights`` (:func:`check_weights_file`):
    the stage's output persists, so the entry's model is not removed for it."""
    if spec == "none":
        return {"requested": spec, "source": "random"}
    path = check_weights_file(f"scratch.{name}.weights", spec)
    return {"requested": spec, "source": "file", "sha256": file_digest(path)}


def check_scratch_weights(name: str, spec: str) -> None:
    """Refuse to train scratch entry ``name`` on a weights file other than the one its
    record (what dvc.lock holds) was hashed from: replaced after the scratch_weights stage
    ran, or a stage run alone (``dvc repro -s``) that skipped it. A missing file is left
    to the model builder, which names the key and the path."""
    if spec == "none":
        return
    where = paths.SCRATCH_WEIGHTS / f"{name}.json"
    record = read_json(where) if where.is_file() else {}
    if record.get("requested") != spec:
        raise WeightsError(f"scratch.{name}.weights: {where} does not record {spec!r}; run "
                           "`dvc repro` (its scratch_weights stage hashes the file first)")
    path = Path(spec)
    if path.is_file() and record.get("sha256") != file_digest(path):
        raise WeightsError(f"scratch.{name}.weights: {spec!r} changed since the scratch_weights "
                           "stage hashed it; run `dvc repro` (not -s/--single-item) to record it")


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
