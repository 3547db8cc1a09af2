"""ResNet-9 (David Page, "How to train your ResNet", 2018) as a Keras functional model.

The small residual network that took DAWNBench's CIFAR-10 time-to-94 % from hours to
seconds: few layers, wide, and pooling early, so that every convolution runs on a small
map. Built in the style of ``keras.applications`` and ``wide_resnet`` (``include_top``,
``pooling``, named layers), with the width as a parameter: Page's network is
``width=64`` (64-128-256-512 filters, 6.6 M parameters); a CPU wants a fraction of it.

Layout (each conv is 3x3 "same", no bias, then BatchNorm and ReLU):

* prep: conv ``w``;
* layer1: conv ``2w``, 2x2 max-pool, then a residual block of two convs ``2w``;
* layer2: conv ``4w``, 2x2 max-pool;
* layer3: conv ``8w``, 2x2 max-pool, then a residual block of two convs ``8w``;
* global max-pooling (Page's last pool), the top.

``stem_stride`` 2 makes the prep conv strided: a 128 px image then costs what a 64 px one
costs from layer1 on, with the prep conv seeing the full resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import yaml
from keras import layers

from pipeline.models.builder import check_pooling, finish, image_input

# The recipe as a params.yaml entry to paste under `scratch:` (not a default model).
RECIPE_FILE = Path(__file__).with_name("resnet9_recipe.yaml")


def recipe() -> dict[str, Any]:
    """RECIPE_FILE's ``scratch.resnet9`` entry, as params.yaml holds it once pasted."""
    return yaml.safe_load(RECIPE_FILE.read_text(encoding="utf-8"))["scratch"]["resnet9"]


# PyTorch's BatchNorm defaults, as in Page's code (and wide_resnet's): Keras' own 0.99
# momentum adapts too slowly for runs of a few dozen epochs.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_bn(x, filters: int, name: str, strides: int = 1):
    """3x3 conv (no bias: BatchNorm follows), BatchNorm, ReLU."""
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                                  name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def residual(x, filters: int, name: str):
    """x + conv_bn(conv_bn(x)): Page's identity-shortcut block."""
    y = conv_bn(x, filters, f"{name}_a")
    y = conv_bn(y, filters, f"{name}_b")
    return layers.Add(name=f"{name}_add")([x, y])


def ResNet9(
    width: int = 64,
    stem_stride: int = 1,
    include_top: bool = False,
    input_shape: tuple[int | None, int | None, int] | None = None,
    input_tensor=None,
    pooling: str | None = "max",
    classes: int = 10,
    classifier_activation: str | None = "softmax",
    name: str | None = None,
) -> keras.Model:
    """Build ResNet-9 of base width ``width`` (channels_last) as a functional ``keras.Model``.

    Args:
        width: filters of the prep conv; the three layers have 2x, 4x and 8x as many.
        stem_stride: 1 (Page's) or 2 (the prep conv halves the image).
        include_top: add global max pooling and a ``classes``-way Dense layer.
        input_shape: (H, W, C); defaults to (None, None, 3) (global pooling: any size).
        input_tensor: optional Keras tensor to use as the model input.
        pooling: without a top, "max" (Page's), "avg" or None (the 4D feature map).
        classes, classifier_activation: the top's.
        name: model name; defaults to "resnet9_{width}".
    """
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"ResNet9 width must be a positive integer; got width={width!r}")
    if stem_stride not in (1, 2):
        raise ValueError(f"ResNet9 stem_stride must be 1 or 2; got {stem_stride!r}")
    check_pooling(pooling)
    img_input = image_input(input_shape, input_tensor)

    x = conv_bn(img_input, width, "prep", strides=stem_stride)
    x = conv_bn(x, 2 * width, "layer1")
    x = layers.MaxPooling2D(2, name="layer1_pool")(x)
    x = residual(x, 2 * width, "layer1_res")
    x = conv_bn(x, 4 * width, "layer2")
    x = layers.MaxPooling2D(2, name="layer2_pool")(x)
    x = conv_bn(x, 8 * width, "layer3")
    x = layers.MaxPooling2D(2, name="layer3_pool")(x)
    x = residual(x, 8 * width, "layer3_res")

    if include_top:  # Page's top pools by max; finish()'s top would average
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
        inputs = (keras.utils.get_source_inputs(input_tensor) if input_tensor is not None
                  else img_input)
        return keras.Model(inputs, x, name=name or f"resnet9_{width}")
    return finish(x, img_input, input_tensor, include_top=False, pooling=pooling,
                  classes=classes, classifier_activation=classifier_activation,
                  name=name or f"resnet9_{width}")
