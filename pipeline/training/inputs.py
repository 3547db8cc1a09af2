"""The batches a network trains on: shuffled and augmented training images, plain validation."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import tensorflow as tf

from pipeline.core import paths
from pipeline.core.contact_sheets import Tile, save_png, sheet
from pipeline.core.params import DataParams, Recipe
from pipeline.data.epochs import Epochs
from pipeline.data.input import image_dataset, load_image, split_arrays
from pipeline.data.manifest import classes, read
from pipeline.data.sources import data_root
from pipeline.training.augment import make_augment


@dataclass(frozen=True)
class Splits:
    """Image paths and integer labels of the train and validation splits."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    classes: list[str]
    exif_orientation: bool = True  # params.yaml's data.images.exif_orientation: the decode


def training_splits(data: DataParams) -> Splits:
    """The train and validation images of the manifest, with the class names in index order."""
    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(data)
    return Splits(*(split_arrays(manifest, root, s, names) for s in ("train", "val")),
                  classes=names, exif_orientation=data.images.exif_orientation)


def datasets(splits: Splits, recipe: Recipe, image_size: int, seed: int, batch_size: int
             ) -> tuple[Epochs, tf.data.Dataset]:
    """Shuffled, augmented training batches (addressed by epoch, see ``Epochs``) and plain
    validation batches, one-hot labels.

    ``batch_size`` is the global batch (the recipe's per-replica batch times the replicas).
    """
    n = len(splits.classes)
    augment = make_augment(recipe.augment, n)

    def onehot(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return images, tf.one_hot(labels, n)

    def train_map(images: tf.Tensor, labels: tf.Tensor, batch_seed: tf.Tensor
                  ) -> tuple[tf.Tensor, tf.Tensor]:
        images, labels = onehot(images, labels)
        return augment(images, labels, batch_seed) if augment else (images, labels)

    load = partial(load_image, image_size=image_size, exif_orientation=splits.exif_orientation)
    train = Epochs(*splits.train, batch_size, seed, load=load, augment=train_map)
    val = image_dataset(*splits.val, image_size, batch_size, augment=onehot,
                        exif_orientation=splits.exif_orientation)
    return train, val


def draw_batch(train: Epochs, class_names: list[str], title: str, path: str | Path,
               most: int = 16) -> None:
    """The first training batch as the network sees it (after augmentation), as a picture."""
    images, labels = next(iter(train.dataset(0, 1)))
    images, labels = np.asarray(images)[:most], np.asarray(labels)[:most]
    tiles = [Tile(img, ", ".join(f"{class_names[j]} {w:.0%}" if w < 0.999 else class_names[j]
                                 for j, w in sorted(enumerate(row), key=lambda t: -t[1])[:2]
                                 if w > 0.001))
             for img, row in zip(images, labels, strict=True)]
    save_png(sheet([("", tiles)], 8, title), path)
