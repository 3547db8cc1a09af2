"""The frozen-or-not ImageNet ResNet that turns images into features.

Models here take raw RGB pixels in [0, 255]: the ResNet's own "caffe"
preprocessing (RGB to BGR, minus the ImageNet channel means, no scaling) is a
layer inside the model, so no caller can feed it ``x / 255`` by mistake, and a
saved model carries the preprocessing its weights were trained with.
"""

from __future__ import annotations

import keras
from keras import ops

from pipeline.core.params import Arch

# keras.applications.imagenet_utils, mode="caffe", in BGR order.
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)

_BUILDERS = {
    "resnet50": keras.applications.ResNet50,
    "resnet101": keras.applications.ResNet101,
    "resnet152": keras.applications.ResNet152,
}


@keras.saving.register_keras_serializable(package="pipeline")
class ResNetPreprocess(keras.layers.Layer):
    """``keras.applications.resnet.preprocess_input`` as a layer, so it saves with the model."""

    def call(self, inputs):
        bgr = ops.flip(ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(IMAGENET_BGR_MEAN, dtype=self.compute_dtype)


def build_backbone(arch: Arch, image_size: int, weights: str | None = None) -> keras.Model:
    """Raw RGB images -> globally average-pooled ResNet features.

    ``weights`` is a file to load (Keras' ImageNet ``_notop.h5``, a legacy
    ``.h5`` or a ``.weights.h5`` of the same architecture) or None for the
    random initialisation that the current Keras seed gives.
    """
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = ResNetPreprocess(name="preprocess")(inputs)
    resnet = _BUILDERS[arch](
        include_top=False, weights=None, input_shape=(image_size, image_size, 3), pooling="avg"
    )
    if weights is not None:
        resnet.load_weights(str(weights))
    return keras.Model(inputs, resnet(x), name=f"{arch}_backbone")


def resnet_of(backbone: keras.Model) -> keras.Model:
    """The keras.applications ResNet nested inside a backbone from :func:`build_backbone`."""
    return next(layer for layer in backbone.layers if isinstance(layer, keras.Model))
