"""The classifier head trained on cached backbone features.

Standardise the features (a Normalization layer adapted on the training
split, so it saves with the head), dropout, then one softmax Dense layer with
L2: the linear probe of the transfer-learning literature, plus the two
regularisers that matter with a few hundred images.
"""

from __future__ import annotations

import keras
import numpy as np


def build_head(train_features: np.ndarray, num_classes: int, dropout: float, l2: float
               ) -> keras.Model:
    # float32 under any mixed-precision policy: the head costs nothing beside the
    # backbone, and a softmax in float16/bfloat16 loses the small probabilities.
    inputs = keras.Input((train_features.shape[1],), name="features")
    norm = keras.layers.Normalization(name="standardize", dtype="float32")
    norm.adapt(train_features)
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
