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
    """A schedule whose length a time budget sets, and sets again, while the run goes
    (``pipeline.training.budget_planner.Planner`` calls :meth:`plan`): linear warm-up over
    ``warmup_epochs`` (at most half the first plan), then ``kind`` over the decay's
    progress from 0 to 1 at the plan's last step: constant, cosine to 0, one-cycle (linear
    to 0), or x ``factor`` as the progress passes each of ``step_epochs`` (epochs of
    ``epochs``, the recipe's: they move with the plan in proportion).

    A plan made after the warm-up keeps the progress reached so far and spreads the rest
    over the new number of steps left: the rate goes on from where it is, without a jump,
    to 0 at the new end. Planned once, at ``epochs``, it is :func:`make_schedule`'s
    schedule without a budget. The plan lives in variables read by the traced training
    step, so that setting it takes effect at the next step without a retrace."""

    def __init__(self, kind: str, learning_rate: float, steps_per_epoch: int, epochs: int,
                 warmup_epochs: int = 0, step_epochs: tuple[int, ...] | list[int] = (),
                 factor: float = 0.1) -> None:
        self.kind = kind
        self.learning_rate = float(learning_rate)
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.warmup_epochs = int(warmup_epochs)
        self.step_epochs = tuple(int(e) for e in step_epochs)
        self.factor = float(factor)
        warm, end = self._warm(epochs), float(epochs * steps_per_epoch)

        def variable(value: float, name: str) -> keras.Variable:
            return keras.Variable(value, dtype="float32", trainable=False, name=name)

        # The warm-up's steps, the last step, and the anchor: the step from which the
        # progress goes on, and the progress there.
        self.warm = variable(warm, "planned_warmup_steps")
        self.end = variable(end, "planned_end_step")
        self.anchor_step = variable(warm, "planned_anchor_step")
        self.anchor_progress = variable(0.0, "planned_anchor_progress")

    def _warm(self, epochs: float) -> float:
        return float(min(self.warmup_epochs, epochs / 2) * self.steps_per_epoch)

    def progress(self, step: float) -> float:
        """The decay's progress at ``step``, in [0, 1], as the traced step computes it."""
        anchor, done = self.anchor_step.numpy(), self.anchor_progress.numpy()
        return float(done + (1 - done) * min(max((step - anchor) / max(
            self.end.numpy() - anchor, 1.0), 0.0), 1.0))

    def plan(self, epochs: int, step: int = 0) -> None:
        """``epochs`` in all, decided at optimizer step ``step``: during the warm-up, the
        schedule planned afresh; after it, the progress so far kept (the anchor)."""
        warm = float(self.warm.numpy())
        if step < warm:
            warm = self._warm(epochs)
            self.warm.assign(warm)
            self.anchor_step.assign(warm)
            self.anchor_progress.assign(0.0)
        else:
            self.anchor_progress.assign(self.progress(step))
            self.anchor_step.assign(float(step))
        self.end.assign(max(float(epochs * self.steps_per_epoch), float(step), warm))

    def state(self) -> dict[str, float]:
        """The plan's variables, for a run that resumes."""
        return {name: float(getattr(self, name).numpy())
                for name in ("warm", "end", "anchor_step", "anchor_progress")}

    def restore(self, state: dict[str, float]) -> None:
        for name, value in state.items():
            getattr(self, name).assign(float(value))

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr = self.learning_rate
        warm, anchor = ops.cast(self.warm, "float32"), ops.cast(self.anchor_step, "float32")
        reached = ops.cast(self.anchor_progress, "float32")
        done = reached + (1.0 - reached) * ops.clip(
            (step - anchor) / ops.maximum(ops.cast(self.end, "float32") - anchor, 1.0),
            0.0, 1.0)
        if self.kind == "cosine":
            rate = lr * 0.5 * (1.0 + ops.cos(math.pi * done))
        elif self.kind == "onecycle":
            rate = lr * (1.0 - done)
        elif self.kind == "step":
            decay = max(self.epochs - self.warmup_epochs, 1)
            drops = sum((ops.cast(done >= (e - self.warmup_epochs) / decay, "float32")
                         for e in self.step_epochs), ops.zeros((), "float32"))
            rate = lr * ops.power(self.factor, drops)
        else:
            rate = ops.full((), lr, "float32")
        return ops.where(step < warm, lr * step / ops.maximum(warm, 1.0), rate)

    def get_config(self) -> dict[str, Any]:
        return {"kind": self.kind, "learning_rate": self.learning_rate,
                "steps_per_epoch": self.steps_per_epoch, "epochs": self.epochs,
                "warmup_epochs": self.warmup_epochs, "step_epochs": list(self.step_epochs),
                "factor": self.factor}


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
