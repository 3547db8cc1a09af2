"""The batches a network trains on: shuffled and augmented training images, plain validation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.core.params import Recipe
from pipeline.data.input import image_dataset
from pipeline.training.augment import make_augment


@dataclass(frozen=True)
class Splits:
    """Image paths and integer labels of the train and validation splits."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    classes: list[str]


def datasets(splits: Splits, recipe: Recipe, image_size: int, seed: int
             ) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    """Shuffled, augmented training batches and plain validation batches, one-hot labels."""
    n = len(splits.classes)
    augment = make_augment(recipe.augment, n, seed)

    def onehot(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return images, tf.one_hot(labels, n)

    def train_map(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return augment(*onehot(images, labels))

    train = image_dataset(*splits.train, image_size, recipe.batch_size, shuffle_seed=seed,
                          augment=train_map if augment else onehot)
    val = image_dataset(*splits.val, image_size, recipe.batch_size, augment=onehot)
    return train, val
