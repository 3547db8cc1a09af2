"""Wide Residual Networks (Zagoruyko and Komodakis 2016) as a Keras functional model.

`keras.applications` has no WRN, and the CIFAR-style WRN-d-k is the usual from-scratch
baseline to compare transfer learning against, so it is built here in the same style as
`keras.applications.ResNet50V2` (functional API, `include_top`, `pooling`, named layers).

The block follows the reference implementations (the authors' Torch code and the widely
used PyTorch port): BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3, and in a block whose shape
changes the 1x1 projection shortcut reads the *pre-activated* input, so that the BN-ReLU
is shared by both branches. With that choice the trainable parameter count equals the
PyTorch port's exactly (e.g. 36,479,194 for WRN-28-10 with a 10-class top).
"""

from __future__ import annotations

import keras
from keras import layers

from pipeline.models.builder import check_pooling, finish, image_input

# PyTorch's BatchNorm defaults (momentum 0.1 there is 0.9 here), as in the reference code;
# Keras' own defaults (0.99, 1e-3) adapt too slowly for 200-epoch CIFAR schedules.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
STEM_FILTERS = 16


def blocks_per_group(depth: int) -> int:
    """Return N = (depth - 4) / 6, the number of blocks in each of the three groups.

    Raises ValueError for a depth that is not 6N + 4 with N >= 1 (10, 16, 22, 28, 34, 40...).
    """
    if not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
        raise ValueError(
            f"WideResNet depth must be 6N+4 with N >= 1 (10, 16, 22, 28, 34, 40, ...); "
            f"got depth={depth!r}"
        )
    return (depth - 4) // 6


def group_widths(width: int) -> tuple[int, int, int]:
    """Filters of the three groups: 16k, 32k, 64k."""
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"WideResNet width must be a positive integer; got width={width!r}")
    return (16 * width, 32 * width, 64 * width)


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(axis=-1, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _conv(filters: int, kernel_size: int, strides: int, name: str) -> layers.Conv2D:
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,  # every conv is followed by BN, a bias would be redundant
        kernel_initializer="he_normal",
        name=name,
    )


def wide_basic_block(x, filters: int, stride: int, dropout: float, name: str):
    """One pre-activation WRN block: BN-ReLU-conv3x3-BN-ReLU-dropout-conv3x3 plus shortcut."""
    preact = _bn(f"{name}_bn1")(x)
    preact = layers.Activation("relu", name=f"{name}_relu1")(preact)
    if stride != 1 or x.shape[-1] != filters:
        # As in the paper's code: the projection sees the pre-activated input.
        shortcut = _conv(filters, 1, stride, f"{name}_shortcut_conv")(preact)
    else:
        shortcut = x
    y = _conv(filters, 3, stride, f"{name}_conv1")(preact)
    y = _bn(f"{name}_bn2")(y)
    y = layers.Activation("relu", name=f"{name}_relu2")(y)
    if dropout > 0:
        # keras Dropout is the identity at inference, so predict() is deterministic.
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    y = _conv(filters, 3, 1, f"{name}_conv2")(y)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def WideResNet(
    depth: int = 16,
    width: int = 4,
    dropout: float = 0.3,
    include_top: bool = False,
    input_shape: tuple[int | None, int | None, int] | None = None,
    input_tensor=None,
    pooling: str | None = "avg",
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
    *,
    weights: str | None = None,
) -> keras.Model:
    """Build WRN-depth-width (channels_last) as a functional `keras.Model`.

    Args:
        depth: total depth 6N+4 (N blocks per group); other values raise ValueError.
        width: widening factor k; the groups have 16k, 32k and 64k filters.
        dropout: rate between the two convs of each block (0 disables the layers).
        include_top: add global average pooling and a `classes`-way Dense layer.
        input_shape: (H, W, C); defaults to (None, None, 3): the network ends in global
            pooling, so any resolution works (downsampling is 4x, CIFAR uses 32x32).
        input_tensor: optional Keras tensor to use as the model input.
        pooling: without a top, "avg", "max" or None (4D feature map output).
        classes: number of classes of the top.
        classifier_activation: activation of the top; None returns logits.
        name: model name; defaults to "wrn_{depth}_{width}".
        weights: None (He-normal init) or the path of a `.weights.h5` file saved from a
            model of the same configuration (loaded with `model.load_weights`). There are
            no published Keras WRN weights to download.
    """
    n = blocks_per_group(depth)
    widths = group_widths(width)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
    check_pooling(pooling)
    if weights is not None and not str(weights).endswith(".weights.h5"):
        raise ValueError(f"weights must be None or a path ending in .weights.h5; got {weights!r}")

    img_input = image_input(input_shape, input_tensor)

    x = _conv(STEM_FILTERS, 3, 1, "stem_conv")(img_input)
    for g, filters in enumerate(widths, start=1):
        for b in range(1, n + 1):
            stride = 2 if (g > 1 and b == 1) else 1
            x = wide_basic_block(x, filters, stride, dropout, name=f"group{g}_block{b}")
    x = _bn("post_bn")(x)
    x = layers.Activation("relu", name="post_relu")(x)

    model = finish(x, img_input, input_tensor, include_top=include_top, pooling=pooling,
                   classes=classes, classifier_activation=classifier_activation,
                   name=name or f"wrn_{depth}_{width}")
    if weights is not None:
        model.load_weights(weights)
    return model
