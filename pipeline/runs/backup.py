"""A run's backup: the folder BackupAndRestore keeps its checkpoint in, named by what the
run reads, and the checkpoint made consistent before a run resumes from it.

Keras writes its checkpoint as two files, the weights and then the epoch: a kill between
the two leaves the weights of epoch n with the epoch n - 1 (or with none, in the first
epoch), and a kill while it writes the weights leaves a file it cannot read. The run's
memory (``pipeline.runs.memory``) holds a digest of each epoch's weights: before a run
resumes, :func:`settle` reads the checkpoint's weights, tells their epoch and mends the
record of it (or falls back to the previous checkpoint, as Keras would, or starts afresh
when nothing can be read).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import keras

from pipeline.core import paths
from pipeline.core.hashing import file_digest
from pipeline.core.io import write_json
from pipeline.runs.memory import recall, weights_digest

log = logging.getLogger(__name__)

METADATA = "training_metadata.json"  # BackupAndRestore's record of the epoch
WEIGHTS = "latest.weights.h5"  # BackupAndRestore's weights and optimizer
PREVIOUS = ".bkp"  # its previous checkpoint (double_checkpoint), these files + this suffix


@dataclass(frozen=True)
class Key:
    """What a run reads: the params ``settings`` and the bytes of ``files``. A killed run is
    resumed only by a run that reads the same."""

    settings: list
    files: list[Path] = field(default_factory=list)


def backup_folder(stage: str, key: Key) -> Path:
    """BackupAndRestore's folder for a run of ``stage``, named by ``key``: a killed run is
    resumed only by a run of the same settings on the same data; another stage run starts
    afresh, and the backups of earlier settings are removed."""
    digest = hashlib.sha256()
    for part in key.settings:
        digest.update((part.model_dump_json() if hasattr(part, "model_dump_json")
                       else repr(part)).encode())
    for file in key.files:
        digest.update(file_digest(file).encode())
    folder = paths.BACKUP / f"{stage}-{digest.hexdigest()[:12]}"
    for old in paths.BACKUP.glob(f"{stage}-*"):
        if not old.name.startswith(folder.name):  # keeps this run's workers' folders
            shutil.rmtree(old, ignore_errors=True)
    return folder


def backup_epoch(folder: str | Path | None) -> int:
    """Epochs a backup in ``folder`` has done (0: none, start afresh)."""
    if folder is None:
        return 0
    try:
        return int(json.loads((Path(folder) / METADATA).read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def settle(model: keras.Model, folder: Path | None) -> int:
    """The epoch a backup in ``folder`` resumes after, its checkpoint made consistent first:
    its weights read (through ``model``, left unchanged) and told by the memory's
    digests; 0 (the backup removed) when nothing in it can be read."""
    if folder is None or not folder.is_dir():
        return 0
    digest = _digest_of(model, folder / WEIGHTS)
    if digest is None and (folder / (WEIGHTS + PREVIOUS)).is_file():
        # Cut short while written: the checkpoint before, as Keras itself falls back to.
        log.warning(f"{folder / WEIGHTS} cannot be read: resuming from the checkpoint before it")
        for name in (WEIGHTS, METADATA):
            if (folder / (name + PREVIOUS)).is_file():
                shutil.copyfile(folder / (name + PREVIOUS), folder / name)
        digest = _digest_of(model, folder / WEIGHTS)
    if digest is None:
        if any(folder.iterdir()):
            log.warning(f"{folder}: no checkpoint can be read; starting afresh")
        shutil.rmtree(folder, ignore_errors=True)
        return 0
    recorded = backup_epoch(folder)
    epochs = sorted((int(p.stem.split("-")[1]) for p in folder.glob("memory-*.json")),
                    reverse=True)
    told = next((n for n in epochs if (recall(folder, n) or {}).get("weights") == digest),
                None)
    if told is not None and told != recorded:  # killed between the weights and the epoch
        log.warning(f"{folder}: the checkpoint holds the weights of epoch {told} recorded as "
                    f"epoch {recorded}; resuming after epoch {told}")
        write_json(folder / METADATA, {"epoch": told, "batch": 0})
        return told
    if recorded == 0:  # weights of no known epoch: nothing to resume
        log.warning(f"{folder}: the checkpoint records no epoch; starting afresh")
        shutil.rmtree(folder, ignore_errors=True)
    return recorded


def _digest_of(model: keras.Model, weights: Path) -> str | None:
    """The digest of a checkpoint's weights (None: unreadable), read through ``model``,
    which is left as it was: BackupAndRestore loads the checkpoint itself, or a fresh run
    starts from the model's own initial weights and optimizer."""
    if not weights.is_file():
        return None
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)  # as BackupAndRestore does
    state = [*model.variables, *(optimizer.variables if optimizer is not None else [])]
    saved = [keras.ops.convert_to_numpy(v.value) for v in state]
    try:
        model.load_weights(weights)
        return weights_digest(model)
    except (OSError, ValueError, KeyError):
        return None
    finally:
        for v, value in zip(state, saved, strict=True):
            v.assign(value)
