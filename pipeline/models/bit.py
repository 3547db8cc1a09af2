"""Big Transfer (BiT, Kolesnikov et al. 2020) ResNet-v2 in Keras 3.

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

from collections.abc import Sequence

import keras
from keras import layers, ops

from pipeline.models.builder import check_pooling, finish, image_input

GN_GROUPS = 32
GN_EPSILON = 1e-5  # bit_tf2 GroupNormalization; Keras' default is 1e-3
WS_EPSILON = 1e-10  # bit_tf2 StandardizedConv2D
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
