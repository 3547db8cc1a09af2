"""The head's recipe: compile by the ``head`` section and fit on cached features."""

from __future__ import annotations

from pathlib import Path

import keras

from pipeline.core.params import HeadParams
from pipeline.models.features import Features
from pipeline.models.head import build_head
from pipeline.training.fit import FitResult, fit
from pipeline.training.optimizers import make_optimizer


def compile_head(model: keras.Model, head: HeadParams) -> None:
    model.compile(
        optimizer=make_optimizer(head.optimizer, head.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def train_head(train: Features, val: Features, head: HeadParams, live_dir: str | Path
               ) -> tuple[keras.Model, FitResult]:
    """Build, compile and fit the head by the ``head`` section; the caller has seeded."""
    model = build_head(train.features, len(train.classes), head.dropout, head.l2)
    compile_head(model, head)
    result = fit(
        model, (train.features, train.labels), (val.features, val.labels),
        epochs=head.epochs, patience=head.patience, monitor=head.monitor, live_dir=live_dir,
        train_count=len(train.labels), batch_size=head.batch_size,
    )
    return model, result
