"""``model.fit`` as every training stage runs it: early stopping, DVCLive curves, a summary."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from pipeline.data.epochs import Epochs
from pipeline.training.curves import restore_curves, save_curves
from pipeline.training.distribute import DistributeError
from pipeline.training.resume import WEIGHTS, Memory, best_weights, ended, settle


def trainable_params(model: keras.Model) -> int:
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


@dataclass(frozen=True)
class FitResult:
    history: dict[str, list[float]]  # from epoch history_from + 1 on
    best_epoch: int  # 1-based, the epoch whose weights were restored
    epochs_run: int  # including those before a resume
    seconds: float  # of the whole training, the runs before a resume included
    images_per_second: float
    first_epoch: int = 0  # epochs done before this run resumed from a backup
    history_from: int = 0  # 0 unless a resume found no memory of the epochs before

    def summary(self, monitor: str) -> dict[str, Any]:
        i = self.best_epoch - 1 - self.history_from
        best = {k: round(float(v[i]), 6) for k, v in self.history.items() if 0 <= i < len(v)}
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "monitor": monitor,
            **{k: best[k] for k in sorted(best) if k != "learning_rate"},
            "train_seconds": round(self.seconds, 1),
            "train_images_per_second": round(self.images_per_second, 1),
        } | ({"resumed_after_epoch": self.first_epoch} if self.first_epoch else {})


def finish(model: keras.Model, backup_dir: Path, state: dict, train_count: int,
           live_dir: str | Path | None) -> FitResult:
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
    print(f"{backup_dir}: the run was over after epoch {state['epoch']}; "
          + (f"restored its best epoch {state['best_epoch'] + 1}" if weights is not None
             else "kept its last epoch's weights"), flush=True)
    shutil.rmtree(backup_dir, ignore_errors=True)
    shutil.rmtree(kept_curves(backup_dir), ignore_errors=True)
    return result(state["history"], state["best_epoch"] + 1, state["epoch"], state["seconds"],
                  train_count, first_epoch=state["epoch"], history_from=state["history_from"])


def result(history: dict[str, list[float]], best_epoch: int, epochs_run: int, seconds: float,
           train_count: int, first_epoch: int, history_from: int) -> FitResult:
    """A FitResult; the speed over the epochs the history and the seconds both cover."""
    timed = epochs_run - history_from
    return FitResult(history, best_epoch, epochs_run, seconds,
                     train_count * timed / seconds if seconds else 0.0, first_epoch=first_epoch,
                     history_from=history_from)


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


def kept_curves(backup_dir: Path) -> Path:
    """Where a backup keeps its run's curves: beside it, as BackupAndRestore removes its
    own folder at the end of every fit."""
    return backup_dir.with_name(f"{backup_dir.name}-curves")


def fit(
    model: keras.Model,
    train: Epochs,
    val: tf.data.Dataset,
    *,
    epochs: int,
    patience: int,
    monitor: str,
    live_dir: str | Path | None,
    train_count: int,
    callbacks: list[keras.callbacks.Callback] | None = None,
    backup_dir: str | Path | None = None,
) -> FitResult:
    """``model.fit`` with early stopping (best weights restored) and per-epoch DVCLive logs.

    ``train`` is the training input addressed by epoch, ``val`` the validation batches.
    ``live_dir`` None: no curves (a worker other than the chief). ``backup_dir``: resume
    there after a kill: BackupAndRestore brings back the weights, optimizer and epoch,
    ``resume.Memory`` early stopping, the scores so far and the random generators, a copy
    beside the backup the curves, and ``Epochs`` the input from that epoch on; the run then
    ends as an uninterrupted one would. A run killed when it was over (see
    ``resume.ended``) is finished from its memory; a checkpoint that Keras left
    inconsistent is settled first (``resume.settle``).
    """
    backup_dir = None if backup_dir is None else Path(backup_dir)
    done = settle(model, backup_dir)
    workers_agree(model, done, backup_dir)
    if done and (state := ended(backup_dir, done, epochs)):
        # Killed between its last checkpoint and the backup's removal: the run was over.
        return finish(model, backup_dir, state, train_count, live_dir)
    if done >= epochs:  # over, but no memory of how it ended: train afresh
        shutil.rmtree(backup_dir, ignore_errors=True)
        done = 0
    return _fit(model, train, val, done, epochs=epochs, patience=patience, monitor=monitor,
                live_dir=live_dir, train_count=train_count, callbacks=callbacks,
                backup_dir=backup_dir)


def _fit(model: keras.Model, train: Epochs, val: tf.data.Dataset, done: int, *, epochs: int,
         patience: int, monitor: str, live_dir: str | Path | None, train_count: int,
         callbacks: list[keras.callbacks.Callback] | None, backup_dir: Path | None
         ) -> FitResult:
    """``fit`` from ``done`` epochs on (0: afresh; else the backup's epoch)."""
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    mode = "min" if monitor.endswith("loss") else "max"
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=patience, restore_best_weights=True, verbose=1
    )
    extra = []
    memory = None
    if backup_dir is not None:
        # Weights, optimizer and epoch after every epoch, removed when fit ends;
        # double_checkpoint: a kill while the weights file is written leaves the previous one.
        # The memory goes first: on disk before the checkpoint that names its epoch.
        memory = Memory(backup_dir, stop, input_epoch=done)
        extra += [memory, keras.callbacks.BackupAndRestore(str(backup_dir),
                                                          double_checkpoint=True)]
        if done:
            print(f"resuming from {backup_dir} after epoch {done}", flush=True)
    if live_dir is not None:
        live_dir = Path(live_dir)
        if backup_dir is not None:
            kept = kept_curves(backup_dir)
            if done:  # `dvc repro` removed the stage's outputs: the curves come back
                restore_curves(kept, live_dir, done)
            else:
                shutil.rmtree(kept, ignore_errors=True)
            extra.insert(0, KeepCurves(live_dir, kept))
        # dvcyaml=None: the plots are declared in dvc.yaml, not written by DVCLive;
        # save_dvc_exp=False: `dvc exp run` owns the experiment, not the stage.
        live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=done > 0)
        if done:
            live.step = done  # DVCLive's own resume restarts at 0 after a one-epoch run
        extra.insert(0, DVCLiveCallback(live=live))  # logs an epoch before it is kept
    # BackupAndRestore leaves its epoch on the model: a later fit (the fine-tune's second
    # phase) would start there.
    model._initial_epoch = None
    start = time.perf_counter()
    history = model.fit(
        train.dataset(done, epochs),  # one iterator across epochs, from where it resumes
        steps_per_epoch=train.steps,
        shuffle=False,  # the input shuffles itself
        validation_data=val,
        epochs=epochs,
        callbacks=[*(callbacks or []), stop, *extra],
        verbose=2,
    )
    seconds = time.perf_counter() - start
    if backup_dir is not None and live_dir is not None:
        shutil.rmtree(kept_curves(backup_dir), ignore_errors=True)
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    run = len(hist.get("loss", []))
    history_from = done
    if memory is not None:  # the epochs before a resume too, as far as it remembers them
        hist, history_from = memory.history, memory.history_from
        seconds += memory.seconds_before
    scores = hist.get(monitor, [])
    if scores:  # the first best, as EarlyStopping picks it
        pick = min if mode == "min" else max
        best = history_from + scores.index(pick(scores)) + 1
    else:
        best = done + run
    return result(hist, best, done + run, seconds, train_count, first_epoch=done,
                  history_from=history_from)


class KeepCurves(keras.callbacks.Callback):
    """After DVCLive logs an epoch, a copy of the curves beside the backup (see
    ``curves.save_curves``)."""

    def __init__(self, live_dir: Path, kept: Path):
        super().__init__()
        self.live_dir, self.kept = live_dir, kept

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_curves(self.live_dir, self.kept)
