"""Fine-tuning the backbone with its head end to end (keras.io "Transfer learning & fine-tuning").

The backbone that made the cached features, with the head trained on them;
optionally a few epochs of the head alone with the backbone frozen (the head adapts
to augmented images and another image size), then unfreeze the stages the recipe
names, RECOMPILE (``trainable`` is read at compile time) and train everything with a
low learning rate. BatchNorm stays in inference mode unless ``train_bn``.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
from pathlib import Path

from pipeline.core import paths
from pipeline.core.io import read_json
from pipeline.core.params import BackboneParams, ResNetRecipe
from pipeline.models.backbone import build_backbone, resnet_of
from pipeline.models.classifier import build_resnet_model
from pipeline.models.saving import load_model
from pipeline.models.weights import weights_path
from pipeline.runs.budget import Budget
from pipeline.runs.dvclive_curves import append_curves
from pipeline.runs.placement import Placement
from pipeline.runs.resume import Resume
from pipeline.training.budget_planner import Planner
from pipeline.training.freeze import freeze
from pipeline.training.inputs import Splits, datasets, draw_batch
from pipeline.training.recipe import Trained, compile_model, fit_recipe, main_planner
from pipeline.training.schedules import make_schedule


def finetune(recipe: ResNetRecipe, backbone_params: BackboneParams, splits: Splits, *, seed: int,
             live_dir: str | Path | None, placement: Placement,
             weights_record: str | Path = paths.WEIGHTS_RECORD,
             head_model: str | Path = paths.HEAD_MODEL, resume: Resume | None = None,
             batch_picture: str | Path | None = None, budget: Budget | None = None) -> Trained:
    """Train the backbone + head by ``recipe``; the caller has seeded everything.

    ``live_dir`` None: no curves (not the chief). ``resume``: the run's backup (None:
    none), which a killed run goes on from, a folder per phase: a run started
    again redoes the short head phase, whose backup its end removed, and resumes the main
    phase after its last epoch, as an uninterrupted run would go on. ``batch_picture``:
    where to draw the first augmented training batch (the input is stateless: drawing it
    changes nothing in the training). ``budget``: the time budget (None:
    ``recipe.budget_seconds`` from this process's start, as a stage has it); the head
    phase may use half of what is left when it starts, the main phase plans the rest."""
    budget = budget or Budget.of_process(recipe.budget_seconds)
    head_model = Path(head_model)
    live_dir = None if live_dir is None else Path(live_dir)
    count = len(splits.train[0])
    batch = placement.global_batch(recipe.batch_size)
    size = recipe.image_size or backbone_params.image_size
    with placement.scope():
        # Build the backbone before anything else draws from the seeded generators: with
        # random weights (no ImageNet file) only the same seed, first, rebuilds the backbone
        # the features stage used, and so the one the head was trained for.
        backbone = build_backbone(backbone_params.arch, size,
                                  weights_path(read_json(weights_record)))
        head = load_model(head_model)
        if head.output_shape[-1] != len(splits.classes):
            raise ValueError(f"{head_model} predicts {head.output_shape[-1]} classes, "
                             f"the manifest has {len(splits.classes)}")
        model = build_resnet_model(backbone, head, recipe.train_bn)
    train_ds, val_ds = datasets(splits, recipe, size, seed, batch)
    val_steps = math.ceil(len(splits.val[0]) / batch)
    if batch_picture is not None:
        draw_batch(train_ds, splits.classes, f"One training batch after augmentation "
                   f"({size} px)", batch_picture)

    head_result = None
    if recipe.head_epochs > 0:
        backbone.trainable = False
        with placement.scope():
            compile_model(model, recipe, recipe.head_learning_rate)
        head_planner = None
        if budget is not None:  # a constant rate: nothing to fit to the plan
            end = budget.seconds - budget.reserve()
            head_planner = Planner(budget, epochs=recipe.head_epochs, steps=train_ds.steps,
                                   val_steps=val_steps,
                                   finish_by=end - (end - budget.elapsed()) / 2)
        head_result = fit_recipe(model, recipe, train_ds, val_ds, recipe.head_epochs,
                                 live_dir, count, planner=head_planner,
                                 resume=None if resume is None else resume.phase("head_phase"))

    backbone.trainable = True
    freeze(resnet_of(backbone), recipe.unfreeze, recipe.train_bn)
    with placement.scope():  # trainable is read at compile time
        schedule = make_schedule(recipe, train_ds.steps, planned=budget is not None)
        compile_model(model, recipe, schedule)
    if head_result is not None:  # other shuffles than the head phase's
        train_ds = dataclasses.replace(train_ds, stream=1)
    planner = main_planner(budget, recipe, train_ds, val_steps, schedule)
    main = None if resume is None else resume.phase("main_phase")
    if head_result is None or live_dir is None:
        result = fit_recipe(model, recipe, train_ds, val_ds, recipe.epochs, live_dir,
                            count, planner=planner, resume=main)
    else:
        # The main phase's curves go after the head phase's (a fit with a backup keeps a
        # copy of them beside it, for a resumed run).
        with tempfile.TemporaryDirectory(prefix="finetune-live-") as phase2:
            result = fit_recipe(model, recipe, train_ds, val_ds, recipe.epochs,
                                Path(phase2), count, planner=planner, resume=main)
            append_curves(Path(phase2), live_dir, offset=head_result.epochs_run)
    # The planner's budget: a resumed run's counts the time the killed run had used.
    return Trained(model, result, head_result, size, recipe.family,
                   planner.budget if planner is not None else None, recipe.flip_tta)
