"""Big Transfer's published `.npz` weights: loading them into BiTResNet.

The files are keyed like the authors' TF graph
(`resnet/block1/unit01/a/standardized_conv2d/kernel`); Keras layer names are those
key prefixes with "/" replaced by "_", so the mapping below stays readable.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers

from pipeline.models.bit import StandardizedConv2D

NPZ_PREFIX = "resnet/"
HEAD_KEYS = ("resnet/head/conv2d/kernel", "resnet/head/conv2d/bias")


_LAYER_TO_KEY = [
    # (Keras layer name pattern, BiT npz key prefix template)
    (re.compile(r"root_block_standardized_conv2d"), "root_block/standardized_conv2d"),
    (
        re.compile(r"(block\d+)_(unit\d+)_a_proj_standardized_conv2d"),
        r"\1/\2/a/proj/standardized_conv2d",
    ),
    (
        re.compile(r"(block\d+)_(unit\d+)_([abc])_(standardized_conv2d|group_norm)"),
        r"\1/\2/\3/\4",
    ),
    (re.compile(r"group_norm"), "group_norm"),
]
_WEIGHT_SUFFIXES = {
    StandardizedConv2D: ("kernel",),
    layers.GroupNormalization: ("gamma", "beta"),
}


@dataclass
class NpzLoadReport:
    """What `load_bit_npz` did: keys assigned, head handling, and keys left unused."""

    loaded: list[str] = field(default_factory=list)
    head_loaded: bool = False
    skipped_head: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _npz_prefix(layer_name: str) -> str | None:
    for pattern, template in _LAYER_TO_KEY:
        if pattern.fullmatch(layer_name):
            return NPZ_PREFIX + pattern.sub(template, layer_name)
    return None


def _head_layer(model: keras.Model) -> layers.Dense | None:
    try:
        layer = model.get_layer("predictions")
    except ValueError:
        return None
    return layer if isinstance(layer, layers.Dense) else None


def bit_weight_map(model: keras.Model) -> Iterator[tuple[str, keras.Variable, keras.Layer]]:
    """Yield (npz key, variable, layer) for every backbone weight of a `BiTResNet`.

    Raises ValueError for a weighted layer it cannot name, so that a changed architecture
    fails loudly instead of leaving weights at their random initialisation.
    """
    head = _head_layer(model)
    for layer in model.layers:
        if not layer.weights or layer is head:
            continue
        suffixes = _WEIGHT_SUFFIXES.get(type(layer))
        prefix = _npz_prefix(layer.name)
        if suffixes is None or prefix is None or len(layer.weights) != len(suffixes):
            raise ValueError(
                f"layer {layer.name!r} ({type(layer).__name__}) has weights but no BiT npz key"
            )
        for suffix, variable in zip(suffixes, layer.weights, strict=True):
            yield f"{prefix}/{suffix}", variable, layer


def _open_npz(path: str | Path) -> np.lib.npyio.NpzFile:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"BiT weights file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path} is not a BiT .npz weights file: {exc}") from exc
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} is not a BiT .npz weights file: it holds a single array, not named arrays"
        )
    return data


def _fit_shape(key: str, value: np.ndarray, expected: tuple[int, ...], layer_name: str):
    if value.shape == tuple(expected):
        return value
    # Tolerate (1, 1, 1, C) norm parameters, as some exporters keep them broadcastable.
    if len(expected) == 1 and value.ndim > 1 and value.size == value.shape[-1] == expected[0]:
        return value.reshape(expected)
    raise ValueError(
        f"shape mismatch for {key!r} (layer {layer_name!r}): "
        f"expected {tuple(expected)}, found {value.shape}"
    )


def load_bit_npz(model: keras.Model, path: str | Path, *, strict: bool = False) -> NpzLoadReport:
    """Load published BiT weights (e.g. `BiT-M-R50x3.npz`) into a `BiTResNet` model.

    Every backbone weight must be in the file with the right shape (else ValueError
    naming the key, the layer and the shapes): a silently half-loaded backbone would
    otherwise fine-tune from noise. The BiT head (`resnet/head/conv2d/*`, 21843 classes
    for BiT-M) is loaded only into a top with the same class count; otherwise it is left
    out and the model's own (zero) head kept. Other keys of the file that the model does
    not use are reported (a warning, or ValueError with `strict=True`).
    """
    report = NpzLoadReport()
    with _open_npz(path) as npz:
        keys = set(npz.files)
        updates = []
        for key, variable, layer in bit_weight_map(model):
            if key not in keys:
                raise ValueError(
                    f"{path}: missing key {key!r} for layer {layer.name!r}; is the file for a "
                    f"different depth or width than model {model.name!r}?"
                )
            value = _fit_shape(key, npz[key], tuple(variable.shape), layer.name)
            updates.append((key, variable, value))

        head = _head_layer(model)
        head_present = [k for k in HEAD_KEYS if k in keys]
        if head is not None and len(head_present) == len(HEAD_KEYS):
            kernel = npz[HEAD_KEYS[0]]
            if kernel.shape[-1] == head.units:
                k_shape = (1, 1, *head.kernel.shape)
                kernel = _fit_shape(HEAD_KEYS[0], kernel, k_shape, head.name)[0, 0]
                bias = _fit_shape(HEAD_KEYS[1], npz[HEAD_KEYS[1]], (head.units,), head.name)
                updates += [(HEAD_KEYS[0], head.kernel, kernel), (HEAD_KEYS[1], head.bias, bias)]
                report.head_loaded = True
        if not report.head_loaded:
            report.skipped_head = head_present

    # Assign only once everything has been checked: an error leaves the model untouched.
    for key, variable, value in updates:
        variable.assign(value.astype(variable.dtype))
        report.loaded.append(key)
    report.unused = sorted(keys - set(report.loaded) - set(report.skipped_head))
    if report.unused:
        message = (
            f"{path}: {len(report.unused)} keys not used by {model.name!r}: "
            + ", ".join(report.unused[:10])
            + (" ..." if len(report.unused) > 10 else "")
        )
        if strict:
            raise ValueError(message)
        warnings.warn(message, stacklevel=2)
    return report
