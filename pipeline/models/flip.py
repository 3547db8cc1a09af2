"""Test-time flip averaging, inside the saved model: each image and its mirror image, the
two predictions averaged (Page's ResNet-9 and airbench evaluate so).

A recipe with ``flip_tta: true`` saves the network wrapped by :func:`flip_averaged`, so
every path that predicts (the evaluate stages on TensorFlow or OpenVINO, the export's
SavedModel, TFLite and ONNX files, ``pipeline.predict``, the server) runs the same
average: none of them has to know. It costs a second forward pass per image. Training
and its validation scores see the plain network.
"""

from __future__ import annotations

import keras
from keras import layers, ops

AVERAGE = "flip_average"  # the averaging layer's name: how a flip-averaged model is told


@keras.saving.register_keras_serializable(package="pipeline")
class HorizontalFlip(layers.Layer):
    """A batch of images (N, H, W, C) mirrored left to right, in training and inference
    alike (``keras.layers.RandomFlip`` flips at random, and only in training)."""

    def call(self, images):
        return ops.flip(images, axis=2)


def flip_averaged(net: keras.Model) -> keras.Model:
    """image -> mean(net(image), net(mirrored image)): ``net``'s class probabilities,
    averaged over the image and its mirror image (``net`` shared, not copied)."""
    inputs = keras.Input(net.input_shape[1:], name="image")
    mirrored = HorizontalFlip(name="mirror")(inputs)
    views = [_single(net(inputs)), _single(net(mirrored))]
    # float32, as every softmax output of the pipeline is (under a mixed policy too).
    mean = layers.Average(name=AVERAGE, dtype="float32")(views)
    return keras.Model(inputs, mean, name=f"{net.name}_flip_tta")


def _single(outputs):
    # A functional model built with lists of one input and output returns a list of one.
    return outputs[0] if isinstance(outputs, list | tuple) else outputs


def unflipped(model: keras.Model) -> keras.Model:
    """The network inside a :func:`flip_averaged` model (``model`` itself otherwise): what
    Grad-CAM maps, on the image as it is."""
    try:
        model.get_layer(AVERAGE)
    except ValueError:
        return model
    nets = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    return nets[0] if len(nets) == 1 else model
