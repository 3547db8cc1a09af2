"""Training a network on the images by itself: a Wide ResNet, BiT or ResNet-9, from scratch
or its own weights file, in one phase with the recipe's schedule, augmentation and early
stopping, and its time budget if it has one."""

from __future__ import annotations

import math
from pathlib import Path

from pipeline.core.params import BiTRecipe, ResNet9Recipe, WRNRecipe
from pipeline.models.classifier import build_scratch_model
from pipeline.runs.budget import Budget
from pipeline.runs.placement import Placement
from pipeline.runs.resume import Resume
from pipeline.training.inputs import Splits, datasets, draw_batch
from pipeline.training.recipe import Trained, compile_model, fit_recipe, main_planner
from pipeline.training.schedules import make_schedule


def train_scratch(name: str, recipe: WRNRecipe | BiTRecipe | ResNet9Recipe, splits: Splits, *,
                  seed: int, live_dir: str | Path | None, placement: Placement,
                  batch_picture: str | Path | None = None,
                  budget: Budget | None = None, resume: Resume | None = None) -> Trained:
    """Train the ``scratch.<name>`` network by ``recipe``; the caller has seeded everything.

    ``batch_picture``: where to draw the first augmented training batch (the input is
    stateless: drawing it changes nothing in the training). ``budget``: the time budget
    (None: ``recipe.budget_seconds`` from this process's start, as a stage has it).
    ``resume``: the run's backup, which a killed run goes on from (None: none)."""
    budget = budget or Budget.of_process(recipe.budget_seconds)
    count = len(splits.train[0])
    batch = placement.global_batch(recipe.batch_size)
    train_ds, val_ds = datasets(splits, recipe, recipe.image_size, seed, batch)
    with placement.scope():
        model = build_scratch_model(recipe, len(splits.classes), name=name)
        schedule = make_schedule(recipe, train_ds.steps, planned=budget is not None)
        compile_model(model, recipe, schedule)
    if batch_picture is not None:
        draw_batch(train_ds, splits.classes,
                   f"One training batch after augmentation ({recipe.image_size} px)",
                   batch_picture)
    planner = main_planner(budget, recipe, train_ds, math.ceil(len(splits.val[0]) / batch),
                           schedule)
    result = fit_recipe(model, recipe, train_ds, val_ds, recipe.epochs,
                        None if live_dir is None else Path(live_dir), count, planner=planner,
                        resume=resume)
    # The planner's budget: a resumed run's counts the time the killed run had used.
    return Trained(model, result, None, recipe.image_size, recipe.family,
                   planner.budget if planner is not None else None, recipe.flip_tta)
