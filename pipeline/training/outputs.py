"""What the stages that train on images read and write the same way: the train and
validation splits, and the saved model with its card (pipeline.training.card)."""

from __future__ import annotations

from pipeline.core import paths
from pipeline.core.io import atomic_path
from pipeline.core.params import DataParams
from pipeline.data.input import split_arrays
from pipeline.data.manifest import classes, read
from pipeline.data.sources import data_root
from pipeline.models.classifier import inference_copy
from pipeline.training.card import IMAGE_INPUT, write_card
from pipeline.training.inputs import Splits
from pipeline.training.recipe import Trained


def training_splits(data: DataParams) -> Splits:
    """The train and validation images of the manifest, with the class names in index order."""
    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(data)
    return Splits(*(split_arrays(manifest, root, s, names) for s in ("train", "val")),
                  classes=names)


def save_trained(name: str, done: Trained, monitor: str, class_names: list[str]) -> dict:
    """Save the model (without its optimizer), its card and its metrics; print one line."""
    with atomic_path(paths.MODELS / f"{name}.keras", suffix=".keras") as tmp:
        inference_copy(done.model).save(tmp)
    card = {"name": name, "input": "image", "preprocessing": IMAGE_INPUT,
            "classes": list(class_names)} | done.summary(monitor)
    write_card(name, card)
    print(f"{name}: best epoch {done.result.best_epoch}/{done.result.epochs_run}, "
          f"val accuracy {card.get('val_accuracy')}, {card['train_seconds']} s, "
          f"{card['train_images_per_second']} img/s -> {paths.MODELS / name}.keras")
    return card
