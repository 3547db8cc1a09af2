"""TFLite: the float32 model, and int8 post-training quantisation with float input/output.

Both convert the float signature (a float32 batch of raw RGB pixels in [0, 255]); the
app decodes and resizes as :func:`pipeline.data.input.load_image` does (applying a JPEG's
EXIF Orientation if card.json's ``exif_orientation`` says so). The int8 model
quantises weights and activations to int8, calibrated on a sample of train images; its
input and output stay float32 (the converter adds the (de)quantise steps), and an op
with no int8 kernel stays in float rather than failing the conversion.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
import tensorflow as tf

from pipeline.core.logs import native_stderr
from pipeline.export.savedmodel import frozen_images_function


def to_tflite(model: keras.Model, image_size: int,
              calibration: np.ndarray | None = None) -> bytes:
    """The flatbuffer: float32, or int8 calibrated on ``calibration`` (float images)."""
    function = frozen_images_function(model, image_size)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], model)
    if calibration is not None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]

        def representative():
            for image in calibration:
                yield [image[None].astype(np.float32)]

        converter.representative_dataset = representative
    with native_stderr("the TFLite converter"):  # "fully_quantize: 0, inference_type: 6, ..."
        return converter.convert()


class TFLiteRunner:
    """``predict(batch) -> probabilities`` with TensorFlow's TFLite interpreter."""

    def __init__(self, model: bytes):
        with warnings.catch_warnings():  # tf.lite.Interpreter points at LiteRT; it still runs
            warnings.simplefilter("ignore")
            self._interpreter = tf.lite.Interpreter(model_content=model)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._shape: tuple[int, ...] | None = None

    def predict(self, batch: np.ndarray) -> np.ndarray:
        if batch.shape != self._shape:  # resizing re-plans the tensors: only on a new shape
            self._interpreter.resize_tensor_input(self._input, batch.shape)
            with native_stderr("the TFLite interpreter"):  # "Created ... XNNPACK delegate"
                self._interpreter.allocate_tensors()
            self._shape = batch.shape
        self._interpreter.set_tensor(self._input, batch.astype(np.float32))
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output).copy()
