"""ONNX through tf2onnx (the float signature, opset 17), run with onnxruntime.

tf2onnx converts the same tf.function the SavedModel serves as ``images``: a float32
batch [N, size, size, 3] of raw RGB pixels in [0, 255], NHWC as in Keras.
"""

from __future__ import annotations

import keras
import numpy as np

from pipeline.export.savedmodel import images_function

OPSET = 17


def to_onnx(model: keras.Model, image_size: int) -> bytes:
    """The ONNX model's bytes."""
    import tf2onnx

    function = images_function(model, image_size)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                             opset=OPSET)
    return proto.SerializeToString()


class ONNXRunner:
    """``predict(batch) -> probabilities`` with onnxruntime on the CPU."""

    def __init__(self, model: bytes):
        import onnxruntime

        self._session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch.astype(np.float32)})[0]
