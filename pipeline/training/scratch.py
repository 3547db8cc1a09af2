"""Training a network on the images by itself: a Wide ResNet or BiT, from scratch or its own
weights file, in one phase with the recipe's schedule, augmentation and early stopping."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.params import BiTRecipe, WRNRecipe
from pipeline.models.classifier import build_scratch_model
from pipeline.runs.placement import Placement
from pipeline.training.fit import Fit, fit
from pipeline.training.inputs import Splits, datasets, draw_batch
from pipeline.training.recipe import Trained, compile_model, fit_recipe
from pipeline.training.schedules import make_schedule


def train_scratch(name: str, recipe: WRNRecipe | BiTRecipe, splits: Splits, *, seed: int,
                  live_dir: str | Path | None, placement: Placement, fit: Fit = fit,
                  batch_picture: str | Path | None = None) -> Trained:
    """Train the ``scratch.<name>`` network by ``recipe``; the caller has seeded everything.

    ``fit``: the plain fit, or one that resumes a killed run (``pipeline.runs.resume``).
    ``batch_picture``: where to draw the first augmented training batch (the input is
    stateless: drawing it changes nothing in the training)."""
    count = len(splits.train[0])
    batch = placement.global_batch(recipe.batch_size)
    train_ds, val_ds = datasets(splits, recipe, recipe.image_size, seed, batch)
    with placement.scope():
        model = build_scratch_model(recipe, len(splits.classes), name=name)
        compile_model(model, recipe, make_schedule(recipe, train_ds.steps))
    if batch_picture is not None:
        draw_batch(train_ds, splits.classes,
                   f"One training batch after augmentation ({recipe.image_size} px)",
                   batch_picture)
    result = fit_recipe(fit, model, recipe, train_ds, val_ds, recipe.epochs,
                        None if live_dir is None else Path(live_dir), count)
    return Trained(model, result, None, recipe.image_size, recipe.family)
