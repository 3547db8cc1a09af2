"""The head's recipe: compile by the ``head`` section and fit on cached features."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from pipeline.core.params import HeadParams
from pipeline.data.epochs import Epochs
from pipeline.data.sharding import shard_by_data
from pipeline.models.features import Features
from pipeline.models.head import build_head
from pipeline.runs.placement import Placement
from pipeline.runs.save import Outcome
from pipeline.training.fit import Fit, FitResult, fit, trainable_params
from pipeline.training.optimizers import make_optimizer


def compile_head(model: keras.Model, head: HeadParams) -> None:
    model.compile(
        optimizer=make_optimizer(head.optimizer, head.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def batches(split: Features, batch_size: int) -> tf.data.Dataset:
    """(features, label) batches in order (validation); tf.data rather than arrays, which
    Keras cannot split across workers (MultiWorkerMirroredStrategy)."""
    ds = tf.data.Dataset.from_tensor_slices((split.features, split.labels))
    return shard_by_data(ds.batch(batch_size))


def train_head(train: Features, val: Features, head: HeadParams, live_dir: str | Path | None,
               placement: Placement, seed: int = 0, fit: Fit = fit
               ) -> tuple[keras.Model, FitResult]:
    """Build, compile and fit the head by the ``head`` section under ``placement``'s
    strategy; the caller has seeded. ``live_dir`` None: no curves (not the chief)."""
    with placement.scope():
        model = build_head(train.features, len(train.classes), head.dropout, head.l2)
        compile_head(model, head)
    batch = placement.global_batch(head.batch_size)
    result = fit(
        # Training batches addressed by epoch: the same order under any strategy.
        model, Epochs(train.features, train.labels, batch, seed), batches(val, batch),
        epochs=head.epochs, patience=head.patience, monitor=head.monitor, live_dir=live_dir,
        train_count=len(train.labels),
    )
    return model, result


def head_outcome(model: keras.Model, result: FitResult, monitor: str, classes: list[str],
                 made: Mapping[str, Any]) -> Outcome:
    """The head to save, compiled as it was trained, and its card: it takes the features
    ``made`` describes (data/features/info.json)."""
    card = {
        "input": "features", "family": "head",
        "preprocessing": f"pooled features of the {made['arch']} backbone at "
                         f"{made['image_size']} px ({made['weights']} weights), as the "
                         "features stage makes them",
        "backbone": {k: made[k] for k in ("arch", "image_size", "weights", "images_per_second")},
        "classes": list(classes),
        # The decode of its features: predict and the export chain the backbone behind it so.
        "exif_orientation": made.get("exif_orientation", True),
    } | result.summary(monitor) | {"trainable_params": trainable_params(model)}
    return Outcome(model, card)
