"""A killed run, started again, resumes: the backup a fit is handed (:class:`Resume`).

As timm's train script resumes a checkpoint before its loop and hands the loop a
``CheckpointSaver``, ``pipeline.training.fit.fit`` is handed a :class:`Resume` and calls
:meth:`Resume.begin` before ``model.fit``: it settles the backup (``backup.settle``:
which epoch it holds) and gives the epoch to go on after and the callbacks that keep the
run: BackupAndRestore (weights, optimizer, epoch), the run's memory (``memory.Memory``:
early stopping, the scores so far, the random generators) and a copy of the curves beside
the backup (``dvclive_curves.KeepCurves``); or, for a run that was already over, how it ended.
With the input addressed by epoch, the run then ends as an uninterrupted one would.
Nothing here fits: this layer sits below ``pipeline.training``.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from pipeline.runs.backup import WEIGHTS, settle
from pipeline.runs.budget import Plan
from pipeline.runs.dvclive_curves import KeepCurves, kept_curves, restore_curves
from pipeline.runs.memory import Memory, best_weights, ended, recall
from pipeline.runs.placement import DistributeError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ended:
    """How a run that was over when it was killed had ended, from its memory: nothing is
    left to fit, its best weights are back in the model."""

    history: dict[str, list[float]]  # from epoch history_from + 1 on
    best_epoch: int  # 1-based
    epochs_run: int
    seconds: float
    history_from: int
    stopped_by: str


@dataclass(frozen=True)
class Resumed:
    """Where a fit goes on (:meth:`Resume.begin`): after ``epoch`` epochs (0: afresh), with
    ``callbacks`` that see each epoch once early stopping and DVCLive have."""

    epoch: int
    callbacks: list[keras.callbacks.Callback]
    memory: Memory  # after the fit: the scores and time of every epoch it remembers
    kept: Path | None = None  # the curves' copy beside the backup

    def end(self) -> Memory:
        """After the fit: the curves' copy removed; the run's memory, which holds the
        epochs before the resume too, as far as it remembers them."""
        if self.kept is not None:
            shutil.rmtree(self.kept, ignore_errors=True)
        return self.memory


@dataclass(frozen=True)
class Resume:
    """A run's backup in ``folder``, handed to the fit: it resumes there after a kill."""

    folder: Path

    def phase(self, name: str) -> Resume:
        """The backup of one phase of a recipe (the fine-tune's ``head_phase`` and
        ``main_phase``), in a folder of its own."""
        return Resume(self.folder / name)

    def begin(self, model: keras.Model, *, epochs: int, stop: keras.callbacks.EarlyStopping,
              live_dir: Path | None, planner: Plan | None = None) -> Resumed | Ended:
        """Before a fit of ``epochs`` epochs with early stopping ``stop``: where it goes on,
        or how the run ended if it was over.

        BackupAndRestore brings back the weights, optimizer and epoch, ``memory.Memory``
        early stopping (``stop``'s state), the scores so far and the random generators, a
        copy beside the backup the curves (in ``live_dir``; None: no curves), and
        ``Epochs`` the input from that epoch on. A run killed when it was over (see
        ``memory.ended``) is finished here from its memory; a checkpoint that Keras left
        inconsistent is settled first (``backup.settle``). BackupAndRestore removes the
        backup at the end of the fit. A time budget's ``planner`` keeps its plan and the
        time used in the memory: a resumed run goes on with them (it keeps the budget it
        started with)."""
        backup_dir = self.folder
        done = settle(model, backup_dir)
        workers_agree(model, done, backup_dir)
        if planner is not None and done and (plan := (recall(backup_dir, done) or {}).get("plan")):
            planner.restore(plan)
        if done and (state := ended(backup_dir, done, epochs)):
            # Killed between its last checkpoint and the backup's removal: the run was over.
            return finish(model, backup_dir, state, live_dir)
        if done >= epochs:  # over, but no memory of how it ended: train afresh
            shutil.rmtree(backup_dir, ignore_errors=True)
            done = 0
        # Weights, optimizer and epoch after every epoch, removed when fit ends;
        # double_checkpoint: a kill while the weights file is written leaves the previous one.
        # The memory goes first: on disk before the checkpoint that names its epoch.
        memory = Memory(backup_dir, stop, input_epoch=done, planner=planner)
        after: list[keras.callbacks.Callback] = [
            memory, keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True)]
        if done:
            log.info(f"resuming from {backup_dir} after epoch {done}")
        kept = kept_curves(backup_dir)
        if live_dir is None:
            return Resumed(done, after, memory)
        if done:  # `dvc repro` removed the stage's outputs: the curves come back
            restore_curves(kept, live_dir, done)
        else:
            shutil.rmtree(kept, ignore_errors=True)
        return Resumed(done, [KeepCurves(live_dir, kept), *after], memory, kept)


def finish(model: keras.Model, backup_dir: Path, state: dict, live_dir: Path | None) -> Ended:
    """End a run that was over when it was killed: early stopping's best weights, as the
    run would have restored them (else the checkpoint's), its scores and curves from the
    memory; the backup removed."""
    weights = best_weights(backup_dir, state)
    if weights is not None:
        model.set_weights(weights)
    else:
        model.load_weights(backup_dir / WEIGHTS)
    if live_dir is not None:
        restore_curves(kept_curves(backup_dir), live_dir, state["epoch"])
    log.info(f"{backup_dir}: the run was over after epoch {state['epoch']}; "
             + (f"restored its best epoch {state['best_epoch'] + 1}" if weights is not None
                else "kept its last epoch's weights"))
    shutil.rmtree(backup_dir, ignore_errors=True)
    shutil.rmtree(kept_curves(backup_dir), ignore_errors=True)
    return Ended(state["history"], state["best_epoch"] + 1, state["epoch"], state["seconds"],
                 state["history_from"], state.get("stopped_by") or (
                     "early_stopping" if state["stopped"] else "epochs"))


def workers_agree(model: keras.Model, done: int, backup_dir: Path | None) -> None:
    """Under ``MultiWorkerMirroredStrategy`` each worker resumes from its own backup; workers
    resumed at different epochs would wait for each other for ever. Compare (an all-gather)
    and stop with a message instead."""
    strategy = model.distribute_strategy
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    epochs = strategy.gather(strategy.run(lambda: tf.constant([done], tf.int64)), axis=0)
    found = sorted({int(e) for e in epochs.numpy()})
    if len(found) > 1:
        raise DistributeError(
            f"the workers' backups are after epochs {found} (this worker's: {done}, in "
            f"{backup_dir}): they cannot resume together; remove .cache/backup on every "
            "worker and run again")


@contextmanager
def resuming(folder: str | Path | None) -> Iterator[Resume | None]:
    """The backup a run's recipe hands its fits: in ``folder`` (None: none, every fit
    starts afresh). The folder is removed once the run has ended, and kept when it raised:
    a killed run started again resumes from it."""
    if folder is None:
        yield None
        return
    yield Resume(Path(folder))
    shutil.rmtree(folder, ignore_errors=True)
