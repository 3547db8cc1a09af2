"""What every network recipe shares: compile by the recipe, fit with its early stopping.

A recipe is one ``finetune.<name>`` or ``scratch.<name>`` entry of params.yaml: optimizer,
schedule, regularisation, augmentation, early stopping. :class:`Trained` is what a recipe
gives back: the model and how its training went, as metrics/train/<name>.json.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf
from keras import ops

from pipeline.core.params import Recipe
from pipeline.data.epochs import Epochs
from pipeline.models.classifier import IMAGE_INPUT, inference_copy
from pipeline.runs.budget import Budget
from pipeline.runs.resume import Resume
from pipeline.runs.save import Outcome
from pipeline.training.budget_planner import Planner
from pipeline.training.fit import FitResult, fit, trainable_params
from pipeline.training.optimizers import make_optimizer
from pipeline.training.schedules import PlannedSchedule


class LearningRateLogger(keras.callbacks.Callback):
    """Adds the optimizer's current learning rate to the epoch logs (so DVCLive plots it)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


def compile_model(model: keras.Model, recipe: Recipe,
                  learning_rate: float | keras.optimizers.schedules.LearningRateSchedule) -> None:
    """Optimizer of ``recipe`` at ``learning_rate``; label-smoothed cross-entropy on one-hot."""
    model.compile(
        optimizer=make_optimizer(recipe.optimizer, learning_rate, recipe.momentum,
                                 recipe.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing),
        # One-hot (and MixUp's soft) labels: argmax accuracy, logged as "accuracy".
        metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
    )


def fit_recipe(model: keras.Model, recipe: Recipe, train: Epochs, val: tf.data.Dataset,
               epochs: int, live_dir: Path | None, count: int,
               planner: Planner | None = None, resume: Resume | None = None) -> FitResult:
    """``fit`` with the recipe's early stopping, and the learning rate in the curves;
    ``planner``: its time budget, if it has one; ``resume``: the backup a killed run
    goes on from, if it keeps one."""
    return fit(model, train, val, epochs=epochs, patience=recipe.patience,
               monitor=recipe.monitor, live_dir=live_dir, train_count=count,
               callbacks=[LearningRateLogger()], planner=planner, resume=resume)


def main_planner(budget: Budget | None, recipe: Recipe, train: Epochs, val_steps: int,
                 schedule: float | keras.optimizers.schedules.LearningRateSchedule
                 ) -> Planner | None:
    """The planner of a recipe's scheduled phase under ``budget`` (None: no budget): its
    ``epochs`` at most, the schedule fitted to the plan."""
    if budget is None:
        return None
    return Planner(budget, epochs=recipe.epochs, steps=train.steps, val_steps=val_steps,
                   schedule=schedule if isinstance(schedule, PlannedSchedule) else None)


@dataclass(frozen=True)
class Trained:
    """A trained model and how the training went."""

    model: keras.Model
    result: FitResult  # the main phase (the only one for wrn and bit)
    head_result: FitResult | None  # resnet's head-only warm-up, if any
    image_size: int
    family: str
    budget: Budget | None = None  # the stage's time budget, if it has one
    flip_tta: bool = False  # the saved model averages each image with its mirror image

    def summary(self, monitor: str) -> dict[str, Any]:
        """The main phase's best-epoch scores; train time covers both phases."""
        out = self.result.summary(monitor)
        if self.head_result is not None:
            out["train_seconds"] = round(self.result.seconds + self.head_result.seconds, 1)
            head = self.head_result.summary(monitor)
            out["head_phase"] = {k: head[k] for k in (
                "epochs_run", "best_epoch", "stopped_by", "val_accuracy", "val_loss",
                "train_seconds", "budget") if k in head}
        return out | {"trainable_params": trainable_params(self.model),
                      "image_size": self.image_size, "family": self.family,
                      "flip_tta": self.flip_tta}

    def outcome(self, monitor: str, classes: list[str], exif_orientation: bool) -> Outcome:
        """The network to save, without its optimizer (``inference_copy``, with its flip
        averaging if the recipe asks for it), and its card; ``exif_orientation``: the
        decode it was trained on, which the card carries."""
        card = {"input": "image", "preprocessing": IMAGE_INPUT, "classes": list(classes),
                "exif_orientation": exif_orientation} | self.summary(monitor)
        return Outcome(inference_copy(self.model, flip_tta=self.flip_tta), card, self.budget)
