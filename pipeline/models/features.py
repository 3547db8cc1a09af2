"""Run the frozen backbone once over every split and cache the pooled features.

Training a head on cached features takes seconds where a pass of ResNet50
over the images takes minutes on a CPU, so the expensive part is done once
and versioned by DVC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from pipeline.core.io import atomic_path


@dataclass(frozen=True)
class Features:
    """One split's features with what is needed to trace them back."""

    features: np.ndarray  # (n, d) float32
    labels: np.ndarray  # (n,) int32, index into classes
    paths: np.ndarray  # (n,) str, relative to the data root
    classes: np.ndarray  # (c,) str

    def save(self, path: str | Path) -> None:
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, features=self.features, labels=self.labels, paths=self.paths,
                     classes=self.classes)

    @classmethod
    def load(cls, path: str | Path) -> Features:
        with np.load(path, allow_pickle=False) as data:
            return cls(**{key: data[key] for key in ("features", "labels", "paths", "classes")})


def extract(
    backbone: keras.Model, dataset: tf.data.Dataset, count: int, desc: str = "features",
    strategy: tf.distribute.Strategy | None = None,
) -> tuple[np.ndarray, float]:
    """Features of every batch of ``dataset`` in order, and the images per second.

    The forward pass is a compiled graph (``tf.function``), not an eager call per batch:
    on a CPU that is about 1.5x faster here, the same as ``model.predict`` but with a
    progress bar and without holding Keras' per-batch callbacks. Under a ``strategy``
    (the backbone built in its scope) each batch is split over the replicas by the
    strategy's own input API and the replicas' features gathered back in order.
    """
    strategy = strategy or tf.distribute.get_strategy()
    images = strategy.experimental_distribute_dataset(dataset.map(lambda x, _: x))

    def replica(batch: tf.Tensor) -> tf.Tensor:
        return tf.cast(backbone(batch, training=False), tf.float32)  # bfloat16 under mixed

    # One trace for any batch size, so the smaller last batch reuses it.
    @tf.function(input_signature=[images.element_spec])
    def forward(batch):
        return strategy.gather(strategy.run(replica, args=(batch,)), axis=0)

    out = []
    start = time.perf_counter()
    with tqdm(total=count, desc=desc, unit="img", mininterval=2.0) as bar:
        for batch in images:
            out.append(forward(batch).numpy())
            bar.update(len(out[-1]))
    elapsed = time.perf_counter() - start
    features = np.concatenate(out) if out else np.zeros((0, backbone.output_shape[-1]), "float32")
    return features, count / elapsed if elapsed > 0 else 0.0
