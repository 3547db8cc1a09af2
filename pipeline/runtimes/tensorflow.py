"""The reference runtime: the Keras model itself, as one traced ``tf.function``."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from pipeline.runtimes.forward import Forward


def available() -> bool:
    return True  # a dependency of the pipeline: the models are Keras models on TensorFlow


def forward(model: keras.Model, precision: str = "float32", note: str = "") -> Forward:
    """The model's inference pass, traced once for any batch size (a smaller last batch
    reuses the trace). It computes in the model's own precision (selection asks it
    for nothing else): float32 unless the model was built under a mixed policy
    (distribute.mixed_precision)."""
    spec = tf.TensorSpec((None, *model.input_shape[1:]), tf.float32)

    @tf.function(input_signature=[spec])
    def traced(batch):
        return tf.cast(model(batch, training=False), tf.float32)

    def run(batch: np.ndarray) -> np.ndarray:
        return traced(batch).numpy()

    compute = keras.mixed_precision.dtype_policy().compute_dtype
    return Forward(run, "tensorflow", "bfloat16" if compute == "bfloat16" else "float32", note)
