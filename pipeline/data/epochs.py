"""The training input of a whole run, addressed by epoch: what makes a resumed run, and a
run under any distribution strategy, see the batches a plain uninterrupted run sees."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from pipeline.data.sharding import shard_by_data

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True, eq=False)  # numpy fields: compared and hashed by identity
class Epochs:
    """A training input addressed by epoch: ``dataset(first, epochs)`` yields the batches
    of epochs ``first`` to ``epochs - 1`` one after another, ``steps`` batches each (give
    ``fit`` that as ``steps_per_epoch``, so that it keeps one iterator across epochs).

    Epoch e is a fresh shuffle of (x, y) and batch b of it is augmented with a seed, both
    functions of (seed, stream, e, b) alone (stateless random ops). So a run resumed at
    epoch e after a kill gets exactly the batches an uninterrupted run would have had from
    there, and a distribution strategy that rewrites the input for its replicas gets the
    same order as one device; a ``Dataset.shuffle`` or a ``tf.random.Generator``, whose
    state lives in the iterator, gives neither. ``stream`` tells apart inputs of one seed
    (a fine-tune's two phases). ``load`` maps one x (an image path) to what the network
    takes; ``augment`` maps a batch (x, y, seed)."""

    x: np.ndarray
    y: np.ndarray
    batch_size: int
    seed: int
    load: Callable[[tf.Tensor], tf.Tensor] | None = None
    augment: Callable[[tf.Tensor, tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = None
    stream: int = 0

    @property
    def steps(self) -> int:
        return math.ceil(len(self.y) / self.batch_size)

    def dataset(self, first: int, epochs: int) -> tf.data.Dataset:
        x, y = tf.constant(self.x), tf.constant(self.y)
        base = tf.constant([self.seed, self.stream], tf.int64)
        load, augment = self.load, self.augment

        def one_epoch(epoch: tf.Tensor) -> tf.data.Dataset:
            seed = tf.random.experimental.stateless_fold_in(base, epoch)
            order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(y)[0]), seed)
            ds = tf.data.Dataset.from_tensor_slices((tf.gather(x, order), tf.gather(y, order)))
            if load is not None:
                ds = ds.map(lambda p, label: (load(p), label), num_parallel_calls=AUTOTUNE)
            ds = ds.batch(self.batch_size)
            if augment is not None:
                ds = ds.enumerate().map(
                    lambda b, batch: augment(
                        *batch, tf.random.experimental.stateless_fold_in(seed, b)),
                    num_parallel_calls=AUTOTUNE)
            return ds

        return shard_by_data(tf.data.Dataset.range(first, epochs).flat_map(one_epoch))
