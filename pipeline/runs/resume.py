"""A fit that a killed run, started again, resumes: the resume wraps the recipe's fit.

As timm's train script resumes a checkpoint before its loop and hands the loop a saver,
:func:`resumable_fit` settles the backup first (``backup.settle``: which epoch it holds),
finishes a run that was already over, else calls ``pipeline.training.fit.fit`` from that
epoch with the callbacks that keep the run: BackupAndRestore (weights, optimizer, epoch),
the run's memory (``memory.Memory``: early stopping, the scores so far, the random
generators) and a copy of the curves beside the backup (``curves.KeepCurves``). With the
input addressed by epoch, the run then ends as an uninterrupted one would.
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

from pipeline.data.epochs import Epochs
from pipeline.runs.backup import WEIGHTS, settle
from pipeline.runs.budget import Plan
from pipeline.runs.curves import KeepCurves, kept_curves, restore_curves
from pipeline.runs.memory import Memory, best_weights, ended, recall
from pipeline.runs.placement import DistributeError
from pipeline.training.fit import Fit, FitResult, early_stopping, fit, result, scored

log = logging.getLogger(__name__)


def resumable_fit(model: keras.Model, train: Epochs, val: tf.data.Dataset, *,
                  backup_dir: str | Path, epochs: int, patience: int, monitor: str,
                  live_dir: str | Path | None, train_count: int,
                  callbacks: list[keras.callbacks.Callback] | None = None,
                  planner: Plan | None = None) -> FitResult:
    """``fit`` (``pipeline.training.fit``) that resumes after a kill from ``backup_dir``.

    BackupAndRestore brings back the weights, optimizer and epoch, ``memory.Memory`` early
    stopping, the scores so far and the random generators, a copy beside the backup the
    curves, and ``Epochs`` the input from that epoch on. A run killed when it was over (see
    ``memory.ended``) is finished from its memory; a checkpoint that Keras left
    inconsistent is settled first (``backup.settle``). The backup is removed at the end.
    A time budget's ``planner`` keeps its plan and the time used in the memory: a resumed
    run goes on with them (it keeps the budget it started with).
    """
    backup_dir = Path(backup_dir)
    done = settle(model, backup_dir)
    workers_agree(model, done, backup_dir)
    if planner is not None and done and (plan := (recall(backup_dir, done) or {}).get("plan")):
        planner.restore(plan)
    if done and (state := ended(backup_dir, done, epochs)):
        # Killed between its last checkpoint and the backup's removal: the run was over.
        return finish(model, backup_dir, state, train_count, live_dir, planner)
    if done >= epochs:  # over, but no memory of how it ended: train afresh
        shutil.rmtree(backup_dir, ignore_errors=True)
        done = 0
    stop = early_stopping(monitor, patience)
    # Weights, optimizer and epoch after every epoch, removed when fit ends;
    # double_checkpoint: a kill while the weights file is written leaves the previous one.
    # The memory goes first: on disk before the checkpoint that names its epoch.
    memory = Memory(backup_dir, stop, input_epoch=done, planner=planner)
    after: list[keras.callbacks.Callback] = [
        memory, keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True)]
    if done:
        log.info(f"resuming from {backup_dir} after epoch {done}")
    kept = kept_curves(backup_dir)
    if live_dir is not None:
        live_dir = Path(live_dir)
        if done:  # `dvc repro` removed the stage's outputs: the curves come back
            restore_curves(kept, live_dir, done)
        else:
            shutil.rmtree(kept, ignore_errors=True)
        after.insert(0, KeepCurves(live_dir, kept))
    run = fit(model, train, val, epochs=epochs, patience=patience, monitor=monitor,
              live_dir=live_dir, train_count=train_count, callbacks=callbacks, start=done,
              stop=stop, after=after, planner=planner)
    if live_dir is not None:
        shutil.rmtree(kept, ignore_errors=True)
    # The epochs before the resume too, as far as the memory remembers them.
    return scored(memory.history, monitor, epochs_run=run.epochs_run,
                  seconds=run.seconds + memory.seconds_before, train_count=train_count,
                  first_epoch=done, history_from=memory.history_from,
                  stopped_by=run.stopped_by, planner=planner)


def finish(model: keras.Model, backup_dir: Path, state: dict, train_count: int,
           live_dir: str | Path | None, planner: Plan | None = None) -> FitResult:
    """End a run that was over when it was killed: early stopping's best weights, as the
    run would have restored them (else the checkpoint's), its scores and curves from the
    memory; the backup removed."""
    weights = best_weights(backup_dir, state)
    if weights is not None:
        model.set_weights(weights)
    else:
        model.load_weights(backup_dir / WEIGHTS)
    if live_dir is not None:
        restore_curves(kept_curves(backup_dir), Path(live_dir), state["epoch"])
    log.info(f"{backup_dir}: the run was over after epoch {state['epoch']}; "
          + (f"restored its best epoch {state['best_epoch'] + 1}" if weights is not None
             else "kept its last epoch's weights"))
    shutil.rmtree(backup_dir, ignore_errors=True)
    shutil.rmtree(kept_curves(backup_dir), ignore_errors=True)
    return result(state["history"], state["best_epoch"] + 1, state["epoch"], state["seconds"],
                  train_count, first_epoch=state["epoch"], history_from=state["history_from"],
                  stopped_by=state.get("stopped_by") or (
                      "early_stopping" if state["stopped"] else "epochs"),
                  planner=planner)


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


@dataclass(frozen=True)
class Resumable:
    """A :class:`~pipeline.training.fit.Fit` that resumes from ``folder``: each phase of a
    recipe (the fine-tune's ``head_phase`` and ``main_phase``) in a folder of its own."""

    folder: Path

    def __call__(self, model: keras.Model, train: Epochs, val: tf.data.Dataset, *,
                 epochs: int, patience: int, monitor: str, live_dir: str | Path | None,
                 train_count: int, callbacks: list[keras.callbacks.Callback] | None = None,
                 phase: str = "", planner: Plan | None = None) -> FitResult:
        return resumable_fit(model, train, val, backup_dir=self.folder / phase if phase
                             else self.folder, epochs=epochs, patience=patience,
                             monitor=monitor, live_dir=live_dir, train_count=train_count,
                             callbacks=callbacks, planner=planner)


@contextmanager
def resuming(folder: str | Path | None) -> Iterator[Fit]:
    """The fit a run's recipe uses: resumable from ``folder`` (None: a plain ``fit``, no
    backup). The folder is removed once the run has ended, and kept when it raised: a
    killed run started again resumes from it."""
    if folder is None:
        yield fit
        return
    yield Resumable(Path(folder))
    shutil.rmtree(folder, ignore_errors=True)
