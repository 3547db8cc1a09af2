"""The SavedModel TF Serving loads: encoded image bytes in, probabilities out.

``serving_default`` takes a batch of encoded images (tf.string: JPEG, PNG, GIF or BMP,
what TF Serving's REST API receives as ``{"b64": ...}``) and decodes, converts to RGB
and resizes each in the graph with :func:`pipeline.data.input.decode_image`, the very
function training and evaluation read images with (turning a photo by its EXIF tag only
if the model was trained so: its card's ``exif_orientation``); ``images`` takes a float32 batch of
raw RGB pixels in [0, 255] already at the model's size. Both return ``probabilities``.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from pipeline.data.input import decode_image

BYTES_SIGNATURE = "serving_default"
IMAGES_SIGNATURE = "images"
OUTPUT = "probabilities"
Function = tf.types.experimental.PolymorphicFunction


def images_function(model: keras.Model, image_size: int) -> Function:
    """``model`` as a tf.function on a float32 batch [None, size, size, 3] named ``images``."""
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name="images")

    @tf.function(input_signature=[spec])
    def images(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return {OUTPUT: model(images, training=False)}

    return images


def frozen_images_function(model: keras.Model, image_size: int):
    """:func:`images_function` as a ConcreteFunction with every weight a constant.

    What the TFLite and ONNX converters take. Traced as is, a Keras 3 Normalization
    layer (the head's standardisation) captures its mean and variance as eager tensors,
    which both converters leave as dangling graph inputs: the TFLite model then fails
    (READ_VARIABLE) and the ONNX one asks for them as inputs, as Keras' own
    ``export(format="onnx")`` does. Freezing folds them in."""
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2,
    )

    return convert_variables_to_constants_v2(
        images_function(model, image_size).get_concrete_function())


def bytes_function(images: Function, image_size: int, exif_orientation: bool = True
                   ) -> Function:
    """``images`` behind the in-graph decoder, on a batch [None] of encoded images."""
    pixels = tf.TensorSpec([image_size, image_size, 3], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def image_bytes(image_bytes):
        batch = tf.map_fn(lambda contents: decode_image(contents, image_size, exif_orientation),
                          image_bytes, fn_output_signature=pixels)
        return images(batch)

    return image_bytes


def write_savedmodel(model: keras.Model, image_size: int, folder: Path,
                     exif_orientation: bool = True) -> None:
    """Write the SavedModel with both signatures to ``folder``; ``serving_default`` applies
    the EXIF Orientation when ``exif_orientation`` (the model's card says).

    tf.saved_model.save on a module holding the model, not Keras' ExportArchive (or
    ``model.export``): in Keras 3.15 those write every variable twice (as ``variables``
    and ``_all_variables``), a 190 MB SavedModel for a 95 MB ResNet50."""
    images = images_function(model, image_size)
    module = tf.Module()
    module.model = model  # tracked: its variables are saved once, under model/
    tf.saved_model.save(module, str(folder), signatures={
        BYTES_SIGNATURE: bytes_function(images, image_size,
                                        exif_orientation).get_concrete_function(),
        IMAGES_SIGNATURE: images.get_concrete_function()})


class SavedModelRunner:
    """A loaded SavedModel's signature as ``predict(batch) -> probabilities``."""

    def __init__(self, folder: Path, signature: str = IMAGES_SIGNATURE):
        self._loaded = tf.saved_model.load(str(folder))  # kept: the signature needs it alive
        self._function = self._loaded.signatures[signature]
        self._input = IMAGES_SIGNATURE if signature == IMAGES_SIGNATURE else "image_bytes"

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._function(**{self._input: tf.constant(batch)})[OUTPUT].numpy()
