"""What a killed training needs besides BackupAndRestore's checkpoint to go on exactly as an
uninterrupted run would.

Keras' ``BackupAndRestore`` keeps the weights, the optimizer and the epoch. It does not keep
early stopping's memory (the best score, its epoch and weights, the epochs waited), the
scores of the epochs before the kill, the training time so far, the state of the
model's random generators (Dropout's ``SeedGenerator``s: Keras saves weights, not seeds),
nor a time budget's plan and the time it has used (``pipeline.training.budget_planner``).
:class:`Memory` writes those beside the checkpoint after every epoch, before the checkpoint
itself, and puts them back when the run resumes. With the input addressed by epoch
(``pipeline.data.epochs.Epochs``) a resumed run then computes what an uninterrupted one
would have, batch for batch. Each memory also holds a digest of its epoch's weights, by
which ``pipeline.runs.backup.settle`` tells which epoch a checkpoint holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import keras
import numpy as np

from pipeline.core.io import atomic_path, write_json
from pipeline.runs.budget import Plan

log = logging.getLogger(__name__)

KEEP = 3  # memories kept: BackupAndRestore may fall back to its previous checkpoint
VERSION = 2  # of the memory's layout: another one is not read


def recall(folder: str | Path, epoch: int) -> dict | None:
    """The memory written after ``epoch`` epochs, or None (none, or of another layout)."""
    saved = Path(folder) / f"memory-{epoch:05d}.json"
    try:
        state = json.loads(saved.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and state.get("version") == VERSION else None


def best_weights(folder: str | Path, state: dict) -> list[np.ndarray] | None:
    """Early stopping's best weights as a memory names them."""
    if not state["best_weights"]:
        return None
    with np.load(Path(folder) / state["best_weights"]) as arrays:
        return [arrays[f"w{i}"] for i in range(len(arrays.files))]


def ended(folder: str | Path, epoch: int, epochs: int) -> dict | None:
    """The memory of a run that was over at its checkpoint after ``epoch`` epochs (it had
    run all ``epochs``, or early stopping had stopped it) but was killed before it removed
    its backup; None when the run has epochs left to go (or no memory)."""
    state = recall(folder, epoch) if epoch else None
    if state is None or not (epoch >= epochs or state["stopped"]):
        return None
    return state


def weights_digest(model: keras.Model) -> str:
    digest = hashlib.sha256()
    for w in model.get_weights():
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


def seed_states(model: keras.Model) -> list:
    """The state variables of the model's random generators (Dropout's SeedGenerators)."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


class Memory(keras.callbacks.Callback):
    """Saves and restores what BackupAndRestore leaves out (see the module), one small JSON
    file per epoch in ``folder`` (plus the best weights, written when they change).

    Put it after ``stop`` and before ``BackupAndRestore`` in the callbacks: its epoch's
    memory is then on disk before the checkpoint that names that epoch."""

    def __init__(self, folder: str | Path, stop: keras.callbacks.EarlyStopping,
                 input_epoch: int = 0, planner: Plan | None = None):
        super().__init__()
        self.folder = Path(folder)
        self.stop = stop
        self.planner = planner  # the run's time budget, if it has one
        self.input_epoch = input_epoch  # the epoch the training input was built to start at
        self.history: dict[str, list[float]] = {}  # the logs of epochs history_from + 1...
        self.history_from = 0  # not 0 after a resume that found no memory
        self.seconds_before = 0.0  # training time of the epochs before this run (in history)
        self._start = 0.0
        self._first = True
        self._best_file: str | None = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        self._start = time.perf_counter()
        self._first = True

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        # The first epoch of this fit is where BackupAndRestore resumed (0 on a fresh run).
        if not self._first:
            return
        self._first = False
        if epoch != self.input_epoch:  # settle() ran first: this cannot be
            raise RuntimeError(f"{self.folder}: Keras resumed after epoch {epoch}, the input "
                               f"was built for epoch {self.input_epoch}")
        if epoch == 0:
            return
        state = recall(self.folder, epoch)
        if state is None:
            log.warning(f"resuming without the memory of epoch {epoch} (no "
                        f"memory-{epoch:05d}.json of this version in {self.folder}): early "
                        "stopping and the random generators start afresh")
            self.history_from = epoch
            return
        if weights_digest(self.model) != state["weights"]:
            log.warning(f"{self.folder}: the checkpoint's weights are not those the memory "
                        f"of epoch {epoch} recorded; resuming with them anyway")
        self.history, self.history_from = state["history"], state["history_from"]
        self.seconds_before = float(state["seconds"])
        stop = self.stop
        stop.best, stop.best_epoch, stop.wait = state["best"], state["best_epoch"], state["wait"]
        self._best_file = state["best_weights"]
        stop.best_weights = best_weights(self.folder, state)
        # By position: the model is the same, its variables' names need not be (Keras
        # numbers them by what the process built before).
        states = seed_states(self.model)
        if len(states) != len(state["seeds"]):
            raise ValueError(f"{self.folder}: the memory holds {len(state['seeds'])} random "
                             f"generator states, the model has {len(states)}: not this "
                             "model's backup")
        for v, value in zip(states, state["seeds"], strict=True):
            v.assign(np.asarray(value, dtype=v.dtype))

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        stop = self.stop
        best_file = None
        if stop.best_weights is not None:
            best_file = f"best-{stop.best_epoch + 1:05d}.npz"
            if best_file != self._best_file:
                with atomic_path(self.folder / best_file, suffix=".npz") as tmp:
                    np.savez(tmp, **{f"w{i}": w for i, w in enumerate(stop.best_weights)})
                self._best_file = best_file
        write_json(self.folder / f"memory-{epoch + 1:05d}.json", {
            "version": VERSION,
            "epoch": epoch + 1,
            "weights": weights_digest(self.model),  # what the checkpoint is about to hold
            "history": self.history,
            "history_from": self.history_from,
            "seconds": self.seconds_before + time.perf_counter() - self._start,
            "best": None if stop.best is None else float(stop.best),
            "best_epoch": int(stop.best_epoch),
            "wait": int(stop.wait),
            "best_weights": best_file,
            # Early stopping (or a time budget: stopped_by) ended the run here.
            "stopped": bool(self.model.stop_training),
            "stopped_by": (self.planner.stopped_by if self.planner is not None else None) or (
                "early_stopping" if self.stop.stopped_epoch > 0 else None),
            # The budget's plan and the time used so far, which a resumed run goes on with.
            "plan": self.planner.state() if self.planner is not None else None,
            "seeds": [keras.ops.convert_to_numpy(v.value).tolist()
                      for v in seed_states(self.model)],
        })
        self._forget(epoch + 1)

    def _forget(self, epoch: int) -> None:
        """Keep the last KEEP memories and the best weights they name."""
        named = set()
        for old in self.folder.glob("memory-*.json"):
            n = int(old.stem.split("-")[1])
            if n <= epoch - KEEP:
                old.unlink(missing_ok=True)
            elif state := recall(self.folder, n):
                named.add(state["best_weights"])
        for weights in self.folder.glob("best-*.npz"):
            if weights.name not in named:
                weights.unlink(missing_ok=True)
