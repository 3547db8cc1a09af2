"""The reference runtime: the Keras model itself, as one traced ``tf.function``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pipeline.runtimes.forward import Forward


def tensorflow_forward(model: keras.Model, note: str = "") -> Forward:
    """The model's inference pass, traced once for any batch size (a smaller last batch
    reuses the trace). Precision is the model's own: float32 unless it was built under a
    mixed policy (distribute.mixed_precision)."""
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[spec])
    def forward(batch):
        return tf.cast(model(batch, training=False), tf.float32)

    def run(batch: np.ndarray) -> np.ndarray:
        return forward(batch).numpy()

    compute = keras.mixed_precision.dtype_policy().compute_dtype
    precision = "bfloat16" if compute == "bfloat16" else "float32"
    return Forward(run, "tensorflow", precision, note)
