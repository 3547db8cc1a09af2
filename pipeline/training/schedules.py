"""Learning-rate schedules in optimizer steps: constant, cosine or step, with warm-up."""

from __future__ import annotations

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


def make_schedule(recipe: Recipe, steps_per_epoch: int
                  ) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """``recipe.schedule`` in optimizer steps: constant, cosine to 0 over ``epochs``, or step.

    All three start with ``warmup_epochs`` of linear warm-up; step drops happen at the
    start of each epoch listed in ``step_epochs`` (counted from the first, warm-up included).
    """
    lr = recipe.learning_rate
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
