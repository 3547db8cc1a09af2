"""What the stages that train on images read and write the same way: the train and
validation splits, and the saved model with its card (pipeline.training.card)."""

from __future__ import annotations

from pathlib import Path

from pipeline.core import paths
from pipeline.core.io import atomic_path
from pipeline.core.params import DataParams
from pipeline.data.input import split_arrays
from pipeline.data.manifest import classes, read
from pipeline.data.sources import data_root
from pipeline.models.classifier import inference_copy
from pipeline.training.card import IMAGE_INPUT, write_card
from pipeline.training.distribute import Placement
from pipeline.training.inputs import Splits
from pipeline.training.recipe import Trained


def training_splits(data: DataParams) -> Splits:
    """The train and validation images of the manifest, with the class names in index order."""
    manifest = read(paths.MANIFEST)
    names = classes(manifest)
    root = data_root(data)
    return Splits(*(split_arrays(manifest, root, s, names) for s in ("train", "val")),
                  classes=names, exif_orientation=data.images.exif_orientation)


def backup_folder(stage: str, settings: list, files: list[Path]) -> Path:
    """BackupAndRestore's folder for a run of ``stage``, named by what the run reads (the
    params ``settings`` and the bytes of ``files``): a killed run is resumed only by a run
    of the same settings on the same data; another stage run starts afresh, and the
    backups of earlier settings are removed."""
    import hashlib
    import shutil

    from pipeline.core.hashing import file_digest

    key = hashlib.sha256()
    for part in settings:
        key.update((part.model_dump_json() if hasattr(part, "model_dump_json")
                    else repr(part)).encode())
    for file in files:
        key.update(file_digest(file).encode())
    folder = paths.BACKUP / f"{stage}-{key.hexdigest()[:12]}"
    for old in paths.BACKUP.glob(f"{stage}-*"):
        if not old.name.startswith(folder.name):  # keeps this run's workers' folders
            shutil.rmtree(old, ignore_errors=True)
    return folder


def save_trained(name: str, done: Trained, monitor: str, class_names: list[str],
                 placement: Placement, exif_orientation: bool = True) -> dict:
    """Save the model (without its optimizer), its card and its metrics; print one line.
    ``exif_orientation``: the decode it was trained on, which the card carries."""
    with atomic_path(paths.MODELS / f"{name}.keras", suffix=".keras") as tmp:
        inference_copy(done.model).save(tmp)
    card = {"name": name, "input": "image", "preprocessing": IMAGE_INPUT,
            "classes": list(class_names), "exif_orientation": exif_orientation,
            } | done.summary(monitor) | {
                "distribute": placement.label(), "replicas": placement.replicas}
    write_card(name, card)
    print(f"{name}: best epoch {done.result.best_epoch}/{done.result.epochs_run}, "
          f"val accuracy {card.get('val_accuracy')}, {card['train_seconds']} s, "
          f"{card['train_images_per_second']} img/s -> {paths.MODELS / name}.keras")
    return card
