"""The input and output ends that keras.applications-style builders share (WRN, BiT).

WideResNet and BiTResNet take the same ``input_shape``/``input_tensor``/
``include_top``/``pooling`` arguments as ``keras.applications.ResNet50``; these
two functions are that contract, written once.
"""

from __future__ import annotations

import keras
from keras import layers

POOLINGS = ("avg", "max", None)


def image_input(input_shape: tuple | None, input_tensor) -> keras.KerasTensor:
    """The graph's image input: a new Input, or one wrapping ``input_tensor``."""
    if input_shape is None:
        input_shape = (None, None, 3)  # fully convolutional up to the pooling
    if input_tensor is None:
        return keras.Input(shape=input_shape)
    if not keras.backend.is_keras_tensor(input_tensor):
        return keras.Input(tensor=input_tensor, shape=input_shape)
    return input_tensor


def check_pooling(pooling: str | None) -> None:
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be 'avg', 'max' or None; got {pooling!r}")


def finish(
    x,
    img_input,
    input_tensor,
    *,
    include_top: bool,
    pooling: str | None,
    classes: int,
    classifier_activation: str | None,
    name: str,
    head_initializer: str = "glorot_uniform",
) -> keras.Model:
    """Global pooling and the optional Dense top, then the functional model."""
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(classes, activation=classifier_activation,
                         kernel_initializer=head_initializer, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    inputs = keras.utils.get_source_inputs(input_tensor) if input_tensor is not None else img_input
    return keras.Model(inputs, x, name=name)
