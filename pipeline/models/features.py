"""Run the frozen backbone once over every split and cache the pooled features.

Training a head on cached features takes seconds where a pass of ResNet50
over the images takes minutes on a CPU, so the expensive part is done once
and versioned by DVC.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from pipeline.core.io import atomic_path

if TYPE_CHECKING:  # Features alone (evaluate_head, in NumPy) must not start TensorFlow
    import keras
    import tensorflow as tf


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


class Extractor:
    """The backbone's forward pass as one compiled graph (``tf.function``), traced on the
    first batch and reused for every later dataset: a stage traces once for all its
    splits, where a trace per split cost about a second each here (tracing and
    TensorFlow's graph optimisation of ResNet50).

    Not an eager call per batch: the graph is about 1.5x faster on a CPU, the same as
    ``model.predict`` but with a progress bar and without Keras' per-batch callbacks.
    Under a ``strategy`` (the backbone built in its scope) each batch is split over the
    replicas by the strategy's own input API and the replicas' features gathered back in
    order. With ``forward`` (a compiled runtime from ``pipeline.runtimes``: OpenVINO, ...)
    each batch goes to it as a NumPy array instead, on this process's CPU.
    """

    def __init__(self, backbone: keras.Model,
                 strategy: tf.distribute.Strategy | None = None,
                 forward: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        import tensorflow as tf

        self.backbone = backbone
        self.strategy = strategy or tf.distribute.get_strategy()
        self.runtime = forward
        self._forward = None
        self._spec = None

    def _compiled(self, spec):
        import tensorflow as tf

        if self._forward is None:
            backbone, strategy = self.backbone, self.strategy

            def replica(batch: tf.Tensor) -> tf.Tensor:
                return tf.cast(backbone(batch, training=False), tf.float32)  # bf16 under mixed

            # One trace for any batch size, so the smaller last batch reuses it.
            @tf.function(input_signature=[spec])
            def forward(batch):
                return strategy.gather(strategy.run(replica, args=(batch,)), axis=0)

            self._forward, self._spec = forward, spec
        elif spec != self._spec:
            raise ValueError(f"this dataset's batches are {spec}; the compiled forward takes "
                             f"{self._spec}: one Extractor serves one image size and dtype")
        return self._forward

    def __call__(self, dataset: tf.data.Dataset, count: int,
                 desc: str = "features") -> tuple[np.ndarray, float]:
        """Features of every batch of ``dataset`` in order, and the images per second
        (the first call's figure includes the trace)."""
        images = dataset.map(lambda x, _: x)
        if self.runtime is None:
            images = self.strategy.experimental_distribute_dataset(images)
            compiled = self._compiled(images.element_spec)

            def forward(batch):
                return compiled(batch).numpy()
        else:
            def forward(batch):
                return self.runtime(batch.numpy())
        out = []
        start = time.perf_counter()
        with tqdm(total=count, desc=desc, unit="img", mininterval=2.0) as bar:
            for batch in images:
                out.append(forward(batch))
                bar.update(len(out[-1]))
        elapsed = time.perf_counter() - start
        dim = self.backbone.output_shape[-1]
        features = np.concatenate(out) if out else np.zeros((0, dim), "float32")
        return features, count / elapsed if elapsed > 0 else 0.0
