"""Learning-rate schedules in optimizer steps: constant, cosine, one-cycle or step, with
warm-up; under a time budget, one whose length is planned while the run goes."""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from pipeline.core.params import Recipe


@keras.saving.register_keras_serializable(package="pipeline")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``learning_rate``, then x ``factor`` at each step boundary.

    With no boundaries it is a constant rate after the warm-up. The warm-up matches
    ``keras.optimizers.schedules.CosineDecay``'s (0 at step 0, the target at
    ``warmup_steps``), so the cosine and step schedules start alike.
    """

    def __init__(self, learning_rate: float, warmup_steps: int = 0,
                 boundaries: tuple[int, ...] | list[int] = (), factor: float = 0.1) -> None:
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.boundaries = tuple(int(b) for b in boundaries)
        self.factor = float(factor)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        drops = sum((ops.cast(step >= b, "float32") for b in self.boundaries),
                    ops.zeros((), "float32"))
        rate = self.learning_rate * ops.power(self.factor, drops)
        if self.warmup_steps:
            warm = self.learning_rate * step / self.warmup_steps
            rate = ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self) -> dict[str, Any]:
        return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps,
                "boundaries": list(self.boundaries), "factor": self.factor}


@keras.saving.register_keras_serializable(package="pipeline")
class PlannedSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """A schedule over a number of epochs that a time budget sets while the run goes
    (``pipeline.training.budget.Planner`` calls :meth:`plan`): linear warm-up over
    ``warmup_epochs`` (at most half the plan), then ``kind``: constant, cosine to 0 or
    one-cycle (linear to 0) at the plan's end, or x ``factor`` at each of ``step_epochs``,
    which are epochs of ``epochs`` (the recipe's) and move with the plan in proportion.

    The plan is a variable read by the traced training step, so that setting it takes
    effect at the next step without a retrace. Planned at ``epochs`` it is the schedule
    :func:`make_schedule` gives without a budget."""

    def __init__(self, kind: str, learning_rate: float, steps_per_epoch: int, epochs: int,
                 warmup_epochs: int = 0, step_epochs: tuple[int, ...] | list[int] = (),
                 factor: float = 0.1, planned: float | None = None) -> None:
        self.kind = kind
        self.learning_rate = float(learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.step_epochs = tuple(int(e) for e in step_epochs)
        self.factor = float(factor)
        self.planned = keras.Variable(float(epochs if planned is None else planned),
                                      dtype="float32", trainable=False, name="planned_epochs")

    def plan(self, epochs: int) -> None:
        self.planned.assign(float(epochs))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr, per_epoch = self.learning_rate, float(self.steps_per_epoch)
        total = ops.cast(self.planned, "float32") * per_epoch
        warm = ops.minimum(float(self.warmup_epochs) * per_epoch, total / 2)
        done = ops.clip((step - warm) / ops.maximum(total - warm, 1.0), 0.0, 1.0)
        if self.kind == "cosine":
            rate = lr * 0.5 * (1.0 + ops.cos(math.pi * done))
        elif self.kind == "onecycle":
            rate = lr * (1.0 - done)
        elif self.kind == "step":
            scale = ops.cast(self.planned, "float32") / float(self.epochs) * per_epoch
            drops = sum((ops.cast(step >= e * scale, "float32") for e in self.step_epochs),
                        ops.zeros((), "float32"))
            rate = lr * ops.power(self.factor, drops)
        else:
            rate = ops.full((), lr, "float32")
        return ops.where(step < warm, lr * step / ops.maximum(warm, 1.0), rate)

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "learning_rate": self.learning_rate,
                "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "warmup_epochs": self.warmup_epochs, "step_epochs": list(self.step_epochs),
                "factor": self.factor,
                "planned": float(ops.convert_to_numpy(self.planned))}


def make_schedule(recipe: Recipe, steps_per_epoch: int, *, planned: bool = False
                  ) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``recipe.schedule`` in optimizer steps: constant, cosine or one-cycle to 0 over
    ``epochs``, or step.

    All start with ``warmup_epochs`` of linear warm-up; step drops happen at the
    start of each epoch listed in ``step_epochs`` (counted from the first, warm-up included).
    ``planned``: a :class:`PlannedSchedule`, whose length a time budget sets.
    """
    lr = recipe.learning_rate
    if planned or recipe.schedule == "onecycle":
        return PlannedSchedule(recipe.schedule, lr, steps_per_epoch, recipe.epochs,
                               recipe.warmup_epochs, recipe.step_epochs, recipe.step_factor)
    warmup = recipe.warmup_epochs * steps_per_epoch
    if recipe.schedule == "cosine":
        total = recipe.epochs * steps_per_epoch
        if not warmup:
            return keras.optimizers.schedules.CosineDecay(lr, decay_steps=max(total, 1))
        return keras.optimizers.schedules.CosineDecay(
            0.0, decay_steps=max(total - warmup, 1), warmup_target=lr, warmup_steps=warmup
        )
    steps = recipe.step_epochs if recipe.schedule == "step" else []
    boundaries = [e * steps_per_epoch for e in steps]
    if not warmup and not boundaries:
        return lr
    return WarmupStepDecay(lr, warmup, sorted(boundaries), recipe.step_factor)
