"""The head's recipes on cached features, by the ``head`` section's ``solver``.

* ``lbfgs`` (:func:`fit_head`): the softmax layer fitted by full-batch L-BFGS in
  NumPy/SciPy (``pipeline.training.softmax``), dropout marginalised, saved as the same
  Keras file (``pipeline.models.head_file``): seconds, and no TensorFlow start.
* ``keras`` (:func:`train_head`): ``model.fit`` with the ``optimizer``, ``learning_rate``
  and ``batch_size`` of the section, under the ``distribute`` strategy.

Importing this module starts no TensorFlow; the Keras recipe imports it when it runs.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from pipeline.core.io import write_text
from pipeline.core.params import HeadParams
from pipeline.models.features import Features
from pipeline.models.head import standardization
from pipeline.models.head_file import HeadFile, standardize
from pipeline.runs.budget import Budget
from pipeline.runs.save import Outcome
from pipeline.training.fit import FitResult, fit, result, trainable_params
from pipeline.training.softmax import fit_softmax

if TYPE_CHECKING:
    import keras
    import tensorflow as tf

    from pipeline.runs.placement import Placement
    from pipeline.runs.resume import Resume


def fit_head(train: Features, val: Features, head: HeadParams, live_dir: str | Path | None
             ) -> tuple[HeadFile, FitResult]:
    """The head by ``head.solver: lbfgs``: standardised as ``build_head`` does, its softmax
    layer fitted by L-BFGS with early stopping on ``head.monitor`` (``head.epochs`` caps
    the iterations, each a full pass over the training split; ``head.patience`` counts
    them). The optimizer, learning rate and batch size are the Keras recipe's; they change
    nothing here. ``live_dir``: the per-iteration curves, in DVCLive's layout."""
    began = time.perf_counter()
    budget = Budget.of_process(head.budget_seconds)
    mean, variance = (v.astype(np.float32) for v in standardization(train.features))
    fitted = fit_softmax(standardize(train.features, mean, variance), train.labels,
                         standardize(val.features, mean, variance), val.labels,
                         classes=len(train.classes), l2=head.l2, dropout=head.dropout,
                         max_iterations=head.epochs, patience=head.patience,
                         monitor=head.monitor, out_of_time=None if budget is None else (
                             lambda: budget.remaining() <= budget.reserve()))
    seconds = time.perf_counter() - began
    model = HeadFile(mean, variance, fitted.model.kernel.astype(np.float32),
                     fitted.model.bias.astype(np.float32), head.dropout, head.l2)
    if live_dir is not None:
        log_curves(live_dir, fitted.history)
    done = result(fitted.history, fitted.best_iteration, fitted.iterations, seconds,
                  len(train.labels), first_epoch=0, history_from=0,
                  stopped_by=STOPPED_BY.get(fitted.stopped, fitted.stopped))
    return model, done if budget is None else replace(done, budget={
        "budget_seconds": budget.seconds})


# The L-BFGS fit's reasons in the words a Keras fit's card uses.
STOPPED_BY = {"early stopping": "early_stopping", "iteration cap": "epochs"}


def log_curves(live_dir: str | Path, history: dict[str, list[float]]) -> None:
    """The per-iteration scores in DVCLive's layout, as its Keras callback writes epochs:
    ``plots/metrics/{train,eval}/<name>.tsv`` (``val_`` scores under eval) and the last
    step's ``metrics.json``, so that the report and `dvc plots` read both solvers alike.
    Written here rather than through ``dvclive.Live``: importing DVCLive and the DVC
    repository it opens took longer than the fit itself. tests/test_head.py checks the
    files against DVCLive's own for the same scores."""
    live_dir = Path(live_dir)
    shutil.rmtree(live_dir / "plots" / "metrics", ignore_errors=True)  # as Live() starts
    summary: dict[str, Any] = {}
    for key, values in history.items():
        group, name = ("eval", key[4:]) if key.startswith("val_") else ("train", key)
        rows = "".join(f"{step}\t{value}\n" for step, value in enumerate(values))
        write_text(live_dir / "plots" / "metrics" / group / f"{name}.tsv",
                   f"step\t{name}\n{rows}")
        summary.setdefault(group, {})[name] = values[-1]
    steps = max(len(values) for values in history.values())
    write_text(live_dir / "metrics.json", json.dumps(summary | {"step": steps - 1}, indent=4)
               + "\n")


def compile_head(model: keras.Model, head: HeadParams) -> None:
    from pipeline.training.optimizers import make_optimizer

    model.compile(
        optimizer=make_optimizer(head.optimizer, head.learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def batches(split: Features, batch_size: int) -> tf.data.Dataset:
    """(features, label) batches in order (validation); tf.data rather than arrays, which
    Keras cannot split across workers (MultiWorkerMirroredStrategy)."""
    import tensorflow as tf

    from pipeline.data.sharding import shard_by_data

    ds = tf.data.Dataset.from_tensor_slices((split.features, split.labels))
    return shard_by_data(ds.batch(batch_size))


def train_head(train: Features, val: Features, head: HeadParams, live_dir: str | Path | None,
               placement: Placement, seed: int = 0, resume: Resume | None = None
               ) -> tuple[keras.Model, FitResult]:
    """Build, compile and fit the head by the ``head`` section under ``placement``'s
    strategy (``head.solver: keras``); the caller has seeded. ``live_dir`` None: no
    curves (not the chief). ``resume``: a backup the fit goes on from (None: none; the
    stage keeps none, the head fits in seconds)."""
    from pipeline.data.epochs import Epochs
    from pipeline.models.head import build_head

    with placement.scope():
        model = build_head(train.features, len(train.classes), head.dropout, head.l2)
        compile_head(model, head)
    from pipeline.training.budget_planner import Planner

    batch = placement.global_batch(head.batch_size)
    # Training batches addressed by epoch: the same order under any strategy.
    epochs = Epochs(train.features, train.labels, batch, seed)
    budget = Budget.of_process(head.budget_seconds)
    planner = None if budget is None else Planner(
        budget, epochs=head.epochs, steps=epochs.steps, val_steps=-(-len(val.labels) // batch))
    result = fit(model, epochs, batches(val, batch), epochs=head.epochs,
                 patience=head.patience, monitor=head.monitor, live_dir=live_dir,
                 train_count=len(train.labels), planner=planner, resume=resume)
    return model, result


def head_outcome(model: keras.Model | HeadFile, result: FitResult, head: HeadParams,
                 classes: list[str], made: Mapping[str, Any]) -> Outcome:
    """The head to save (a Keras model compiled as it was trained, or the L-BFGS fit's
    file) and its card: it takes the features ``made`` describes (data/features/info.json)
    and says which solver fitted it."""
    card = {
        "input": "features", "family": "head",
        "preprocessing": f"pooled features of the {made['arch']} backbone at "
                         f"{made['image_size']} px ({made['weights']} weights), as the "
                         "features stage makes them",
        "backbone": {k: made[k] for k in ("arch", "image_size", "weights", "images_per_second")},
        "classes": list(classes),
        # The decode of its features: predict and the export chain the backbone behind it so.
        "exif_orientation": made.get("exif_orientation", True),
        "solver": head.solver,
    } | result.summary(head.monitor) | {"trainable_params": (
        model.trainable_params() if isinstance(model, HeadFile) else trainable_params(model))}
    return Outcome(model, card, budget=Budget.of_process(head.budget_seconds))
