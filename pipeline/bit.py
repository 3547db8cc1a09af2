"""Big Transfer (BiT, Kolesnikov et al. 2020) ResNet-v2 in Keras 3, and its `.npz` weights.

BiT's published weights are `.npz` files keyed like the authors' TF graph
(`resnet/block1/unit01/a/standardized_conv2d/kernel`), and neither `keras.applications`
nor `keras_hub` has the architecture, so both are rebuilt here. The layout follows
`bit_tf2/models.py` of google-research/big_transfer, which is what those keys describe:

* root: explicit zero padding, 7x7 stride-2 weight-standardised conv (no bias), zero
  padding again and a 3x3 stride-2 "valid" max-pool (BiT pads with zeros, not -inf);
* bottleneck units a (GN-ReLU-conv1x1), b (GN-ReLU-pad-conv3x3, the block's stride is
  here), c (GN-ReLU-conv1x1 to 4x); the first unit of each block has a 1x1 projection
  shortcut that reads the pre-activated input (the output of a's GN-ReLU);
* GroupNorm with 32 groups and epsilon 1e-5, then GN-ReLU, global pooling, Dense head.

Keras layer names are the BiT key prefixes with "/" replaced by "_" (Keras forbids "/"),
e.g. `block1_unit01_a_proj_standardized_conv2d`, so the mapping stays readable.
"""

from __future__ import annotations

import re
import warnings
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from pipeline.arch import check_pooling, finish, image_input

GN_GROUPS = 32
GN_EPSILON = 1e-5  # bit_tf2 GroupNormalization; Keras' default is 1e-3
WS_EPSILON = 1e-10  # bit_tf2 StandardizedConv2D
NPZ_PREFIX = "resnet/"
HEAD_KEYS = ("resnet/head/conv2d/kernel", "resnet/head/conv2d/bias")
R50_BLOCKS = (3, 4, 6, 3)


@keras.saving.register_keras_serializable(package="pipeline")
class StandardizedConv2D(layers.Conv2D):
    """Conv2D whose kernel is standardised (zero mean, unit variance per output filter).

    Weight standardisation (arXiv 1903.10520) is what lets BiT train with GroupNorm at
    any batch size. Only the forward op changes: the stored kernel is the raw one, as in
    the BiT checkpoints, so the weights load unchanged.
    """

    def __init__(self, *args, standardization_epsilon: float = WS_EPSILON, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.standardization_epsilon = standardization_epsilon

    def convolution_op(self, inputs, kernel):
        # Kernel is HWIO: normalise over H, W and I for each output filter.
        mean, var = ops.moments(kernel, axes=[0, 1, 2], keepdims=True)
        kernel = (kernel - mean) * ops.rsqrt(var + self.standardization_epsilon)
        return super().convolution_op(inputs, kernel)

    def get_config(self) -> dict:
        config = super().get_config()
        config["standardization_epsilon"] = self.standardization_epsilon
        return config


def _std_conv(filters: int, kernel_size: int, strides: int, name: str) -> StandardizedConv2D:
    return StandardizedConv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",  # padding is explicit, as in BiT, so odd sizes match exactly
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def _gn(name: str) -> layers.GroupNormalization:
    return layers.GroupNormalization(groups=GN_GROUPS, epsilon=GN_EPSILON, name=name)


def bottleneck_unit(x, filters: int, stride: int, name: str):
    """One BiT pre-activation bottleneck unit; `filters` is the bottleneck width."""
    out_filters = 4 * filters
    a = _gn(f"{name}_a_group_norm")(x)
    a = layers.Activation("relu", name=f"{name}_a_relu")(a)
    if stride > 1 or x.shape[-1] != out_filters:
        shortcut = _std_conv(out_filters, 1, stride, f"{name}_a_proj_standardized_conv2d")(a)
    else:
        shortcut = x
    y = _std_conv(filters, 1, 1, f"{name}_a_standardized_conv2d")(a)
    y = _gn(f"{name}_b_group_norm")(y)
    y = layers.Activation("relu", name=f"{name}_b_relu")(y)
    y = layers.ZeroPadding2D(1, name=f"{name}_b_pad")(y)
    y = _std_conv(filters, 3, stride, f"{name}_b_standardized_conv2d")(y)
    y = _gn(f"{name}_c_group_norm")(y)
    y = layers.Activation("relu", name=f"{name}_c_relu")(y)
    y = _std_conv(out_filters, 1, 1, f"{name}_c_standardized_conv2d")(y)
    return layers.Add(name=f"{name}_add")([y, shortcut])


def _check_arch(width: int, block_counts: Sequence[int]) -> tuple[int, ...]:
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"BiT width must be a positive integer; got width={width!r}")
    counts = tuple(block_counts)
    if not counts or any(not isinstance(c, int) or c < 1 for c in counts):
        raise ValueError(
            f"block_counts must be a non-empty sequence of positive ints; got {block_counts!r}"
        )
    return counts


def default_name(width: int, block_counts: Sequence[int]) -> str:
    """`bit_r50x3` style name: depth = 3 convs per unit + root conv + head."""
    return f"bit_r{3 * sum(block_counts) + 2}x{width}"


def BiTResNet(
    width: int = 3,
    block_counts: Sequence[int] = R50_BLOCKS,
    include_top: bool = False,
    input_shape: tuple[int | None, int | None, int] | None = None,
    input_tensor=None,
    pooling: str | None = "avg",
    classes: int = 1000,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """Build a BiT ResNet-v2 (GroupNorm + weight standardisation) as a functional model.

    Args:
        width: width multiplier (R50x1 is 1, R50x3 is 3); block b's bottleneck has
            64 * width * 2**b filters and outputs 4x that.
        block_counts: units per block; (3, 4, 6, 3) is R50, (3, 4, 23, 3) R101,
            (3, 8, 36, 3) R152. Shorter or smaller tuples give cheap variants for tests.
        include_top: add global average pooling and a Dense head. The head is
            zero-initialised as in BiT: fine-tuning starts from a uniform prediction.
        input_shape: (H, W, C); defaults to (None, None, 3), any resolution (BiT is used
            at 128 to 480 px). The total stride is 2**(len(block_counts) + 1).
        input_tensor: optional Keras tensor to use as the model input.
        pooling: without a top, "avg", "max" or None (4D feature map output).
        classes: number of classes of the head.
        classifier_activation: head activation; None returns logits.
        name: model name; defaults to e.g. "bit_r50x3".

    Load published weights with `load_bit_npz(model, "BiT-M-R50x3.npz")`.
    """
    counts = _check_arch(width, block_counts)
    check_pooling(pooling)
    img_input = image_input(input_shape, input_tensor)

    x = layers.ZeroPadding2D(3, name="root_block_pad")(img_input)
    x = _std_conv(64 * width, 7, 2, "root_block_standardized_conv2d")(x)
    x = layers.ZeroPadding2D(1, name="root_block_pool_pad")(x)
    x = layers.MaxPooling2D(3, strides=2, padding="valid", name="root_block_pool")(x)
    for b, units in enumerate(counts):
        filters = 64 * width * 2**b
        for u in range(1, units + 1):
            stride = 2 if (b > 0 and u == 1) else 1
            x = bottleneck_unit(x, filters, stride, name=f"block{b + 1}_unit{u:02d}")
    x = _gn("group_norm")(x)
    x = layers.Activation("relu", name="relu")(x)

    return finish(x, img_input, input_tensor, include_top=include_top, pooling=pooling,
                  classes=classes, classifier_activation=classifier_activation,
                  name=name or default_name(width, counts), head_initializer="zeros")


def bit_param_count(
    width: int, block_counts: Sequence[int] = R50_BLOCKS, classes: int | None = None
) -> int:
    """Count a BiT ResNet's parameters from the architecture, without building it.

    Convolutions have no bias, GroupNorm has gamma and beta (no moving statistics), so
    every parameter is trainable. `classes=None` (or 0) counts the headless network.
    """
    counts = _check_arch(width, block_counts)
    total = 7 * 7 * 3 * 64 * width  # root conv on RGB
    c_in = 64 * width
    for b, units in enumerate(counts):
        mid = 64 * width * 2**b
        out = 4 * mid
        for u in range(units):
            cin = c_in if u == 0 else out
            total += 2 * cin + cin * mid  # a: GN, 1x1
            total += 2 * mid + 9 * mid * mid  # b: GN, 3x3
            total += 2 * mid + mid * out  # c: GN, 1x1
            if u == 0:  # projection (every first unit changes stride or width)
                total += cin * out
        c_in = out
    total += 2 * c_in  # final GN
    if classes:
        total += c_in * classes + classes
    return total


# --- .npz weights ------------------------------------------------------------------------

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


def export_bit_npz(model: keras.Model, path: str | Path) -> Path:
    """Write a `BiTResNet`'s weights as an `.npz` with the published BiT key names.

    A Dense top named "predictions" is written as the 1x1 conv head BiT uses,
    `resnet/head/conv2d/kernel` of shape (1, 1, C, classes). The file is written at
    exactly `path` (numpy would otherwise append ".npz").
    """
    arrays = {key: np.asarray(var.numpy()) for key, var, _ in bit_weight_map(model)}
    head = _head_layer(model)
    if head is not None:
        kernel, bias = (np.asarray(w) for w in head.get_weights())
        arrays[HEAD_KEYS[0]] = kernel.reshape(1, 1, *kernel.shape)
        arrays[HEAD_KEYS[1]] = bias
    path = Path(path)
    with path.open("wb") as f:
        np.savez(f, **arrays)
    return path


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


__all__ = [
    "BiTResNet",
    "NpzLoadReport",
    "StandardizedConv2D",
    "bit_param_count",
    "bit_weight_map",
    "export_bit_npz",
    "load_bit_npz",
]
