"""ONNX through tf2onnx (the float signature, opset 17), run with onnxruntime.

tf2onnx converts the frozen graph of the function the SavedModel serves as ``images``:
a float32 batch [N, size, size, 3] of raw RGB pixels in [0, 255], NHWC as in Keras.
(``tf2onnx.convert.from_function`` and Keras' ``export(format="onnx")`` trace it
unfrozen and lose the head's standardisation constants; see savedmodel.py.)
"""

from __future__ import annotations

import keras
import numpy as np

from pipeline.export.savedmodel import frozen_images_function

OPSET = 17


def to_onnx(model: keras.Model, image_size: int) -> bytes:
    """The ONNX model's bytes."""
    import tf2onnx

    function = frozen_images_function(model, image_size)
    proto, _ = tf2onnx.convert.from_graph_def(
        function.graph.as_graph_def(), input_names=[t.name for t in function.inputs],
        output_names=[t.name for t in function.outputs], opset=OPSET)
    return proto.SerializeToString()


class ONNXRunner:
    """``predict(batch) -> probabilities`` with onnxruntime on the CPU."""

    def __init__(self, model: bytes):
        import onnxruntime

        self._session = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: batch.astype(np.float32)})[0]
