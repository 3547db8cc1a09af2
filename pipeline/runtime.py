"""Process-wide set-up shared by the stages: seeds and deterministic ops."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and ask TF for deterministic kernels.

    With op determinism on, TensorFlow raises on the few CPU ops that have no
    deterministic kernel instead of silently varying between runs.
    """
    random.seed(seed)
    np.random.seed(seed)
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
