"""Keras optimizers by the names params.yaml uses."""

from __future__ import annotations

import keras


def make_optimizer(
    name: str,
    learning_rate: float | keras.optimizers.schedules.LearningRateSchedule,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
) -> keras.optimizers.Optimizer:
    """A Keras optimizer by name; weight decay is decoupled (AdamW-style) in every one."""
    decay = weight_decay or None
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, weight_decay=decay)
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate, weight_decay=weight_decay)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, weight_decay=decay)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate, momentum=momentum, weight_decay=decay)
    raise ValueError(f"unknown optimizer {name!r}")
