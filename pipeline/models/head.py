"""The classifier head trained on cached backbone features.

Standardise the features (a Normalization layer set from the training split, so it
saves with the head), dropout, then one softmax Dense layer with L2: the linear probe
of the transfer-learning literature, plus the two regularisers that matter with a few
hundred images.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the standardisation alone (the NumPy fit) must not start TensorFlow
    import keras

# Variance floor, as a fraction of the median variance of the features. Pooled ReLU
# features have dimensions that are (near-)constant on a few hundred training images,
# typically all zero, yet non-zero on other images: standardised by their own tiny
# standard deviation (Keras floors it at 1e-7), a value of 0.01 became 1e5 and the
# head's first validation loss ran into the tens of thousands. With the floor, such a
# dimension is scaled like one with a tenth of the typical standard deviation.
VARIANCE_FLOOR = 0.01


def standardization(train_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, variance) of each feature on the training split, the variance floored at
    ``VARIANCE_FLOOR`` x the median of the positive variances (1 when every one is 0)."""
    x = np.asarray(train_features, dtype=np.float64)
    mean, variance = x.mean(axis=0), x.var(axis=0)
    positive = variance[variance > 0]
    typical = float(np.median(positive)) if positive.size else 1.0
    return mean, np.maximum(variance, VARIANCE_FLOOR * typical)


def build_head(train_features: np.ndarray, num_classes: int, dropout: float, l2: float
               ) -> keras.Model:
    import keras

    # float32 under any mixed-precision policy: the head costs nothing beside the
    # backbone, and a softmax in float16/bfloat16 loses the small probabilities.
    inputs = keras.Input((train_features.shape[1],), name="features")
    norm = keras.layers.Normalization(name="standardize", dtype="float32")
    norm.build((None, train_features.shape[1]))
    mean, variance = standardization(train_features)
    # Into the layer's weights (not its config), so they save with the head as adapt's do.
    norm.adapt_mean.assign(mean.astype("float32"))
    norm.adapt_variance.assign(variance.astype("float32"))
    norm.finalize_state()
    x = norm(inputs)
    x = keras.layers.Dropout(dropout, name="dropout", dtype="float32")(x)
    outputs = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=keras.regularizers.L2(l2) if l2 else None,
        name="predictions",
        dtype="float32",
    )(x)
    return keras.Model(inputs, outputs, name="head")
