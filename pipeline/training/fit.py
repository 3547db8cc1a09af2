"""``model.fit`` as every training recipe runs it: early stopping, DVCLive curves, a summary.

A run that resumes after a kill hands ``fit`` its backup (``pipeline.runs.resume.Resume``),
as timm's train script hands its loop a ``CheckpointSaver``: the backup, settled first,
says the epoch to go on after and gives the callbacks that keep the run's state, and
``fit`` merges what the run remembers of the epochs before into the result.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # FitResult alone (the head's NumPy fit) must not start TensorFlow
    import keras
    import tensorflow as tf

    from pipeline.data.epochs import Epochs
    from pipeline.runs.resume import Resume
from pipeline.runs.budget import Plan


def trainable_params(model: keras.Model) -> int:
    import keras

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
    # Why the fit ended: "epochs" (all it was given), "early_stopping", "budget" (the
    # epochs its time budget planned) or "deadline" (out of time before the plan's end).
    stopped_by: str = "epochs"
    budget: dict[str, Any] | None = None  # the plan's facts (Planner.facts), if budgeted

    def summary(self, monitor: str) -> dict[str, Any]:
        i = self.best_epoch - 1 - self.history_from
        best = {k: round(float(v[i]), 6) for k, v in self.history.items() if 0 <= i < len(v)}
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "stopped_by": self.stopped_by,
            "monitor": monitor,
            **{k: best[k] for k in sorted(best) if k != "learning_rate"},
            "train_seconds": round(self.seconds, 1),
            "train_images_per_second": round(self.images_per_second, 1),
        } | ({"resumed_after_epoch": self.first_epoch} if self.first_epoch else {}) | (
            {"budget": self.budget} if self.budget is not None else {})


def direction(monitor: str) -> str:
    return "min" if monitor.endswith("loss") else "max"


def early_stopping(monitor: str, patience: int) -> keras.callbacks.EarlyStopping:
    """Early stopping on ``monitor`` with the best epoch's weights restored. Silent: the
    stage's own line names the best epoch (Keras' "Restoring model weights..." came once
    per fit, twice in a fine-tune)."""
    import keras

    return keras.callbacks.EarlyStopping(monitor=monitor, mode=direction(monitor),
                                         patience=patience, restore_best_weights=True,
                                         verbose=0)


def result(history: dict[str, list[float]], best_epoch: int, epochs_run: int, seconds: float,
           train_count: int, first_epoch: int, history_from: int, stopped_by: str = "epochs",
           planner: Plan | None = None) -> FitResult:
    """A FitResult; the speed over the epochs the history and the seconds both cover;
    ``stopped_by`` is early stopping's, the planner's (if it stopped the fit) comes first."""
    timed = epochs_run - history_from
    if planner is not None and planner.stopped_by:
        stopped_by = planner.stopped_by
    return FitResult(history, best_epoch, epochs_run, seconds,
                     train_count * timed / seconds if seconds else 0.0, first_epoch=first_epoch,
                     history_from=history_from, stopped_by=stopped_by,
                     budget=None if planner is None else planner.facts())


def scored(history: dict[str, list[float]], monitor: str, *, epochs_run: int, seconds: float,
           train_count: int, first_epoch: int, history_from: int, stopped_by: str = "epochs",
           planner: Plan | None = None) -> FitResult:
    """The result of the epochs ``history`` holds (from ``history_from`` + 1 on), its best
    epoch the first best score, as EarlyStopping picks it (the last epoch without one)."""
    scores = history.get(monitor, [])
    if scores:
        pick = min if direction(monitor) == "min" else max
        best = history_from + scores.index(pick(scores)) + 1
    else:
        best = epochs_run
    return result(history, best, epochs_run, seconds, train_count, first_epoch=first_epoch,
                  history_from=history_from, stopped_by=stopped_by, planner=planner)


def stop_reason(stop: keras.callbacks.EarlyStopping) -> str:
    """"early_stopping" when ``stop`` ended the fit, else "epochs"."""
    return "early_stopping" if stop.stopped_epoch > 0 else "epochs"


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
    planner: Plan | None = None,
    resume: Resume | None = None,
) -> FitResult:
    """``model.fit`` with early stopping (best weights restored) and per-epoch DVCLive logs.

    ``train`` is the training input addressed by epoch, ``val`` the validation batches.
    ``live_dir`` None: no curves (a worker other than the chief). ``planner``: the fit's
    time budget (``pipeline.training.budget_planner``), which sets how many of ``epochs`` it runs;
    None: all of them, unless early stopping ends it. ``resume``: the run's backup
    (``pipeline.runs.resume``), which a killed run started again goes on from: the
    input, the curves and Keras' epochs after the epochs it holds, early stopping with the
    state it kept, and a result that covers the epochs before too; None: no backup.
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from pipeline.runs.resume import Ended  # imports TensorFlow: not at the top, for FitResult

    live_dir = None if live_dir is None else Path(live_dir)
    stop = early_stopping(monitor, patience)
    resumed = None
    if resume is not None:
        resumed = resume.begin(model, epochs=epochs, stop=stop, live_dir=live_dir,
                               planner=planner)
        if isinstance(resumed, Ended):  # killed once it was over: nothing left to fit
            return result(resumed.history, resumed.best_epoch, resumed.epochs_run,
                          resumed.seconds, train_count, first_epoch=resumed.epochs_run,
                          history_from=resumed.history_from, stopped_by=resumed.stopped_by,
                          planner=planner)
    start = 0 if resumed is None else resumed.epoch
    logged = []
    if live_dir is not None:
        # dvcyaml=None: the plots are declared in dvc.yaml, not written by DVCLive;
        # save_dvc_exp=False: `dvc exp run` owns the experiment, not the stage.
        live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=start > 0)
        if start:
            live.step = start  # DVCLive's own resume restarts at 0 after a one-epoch run
        logged.append(DVCLiveCallback(live=live))  # logs an epoch before the backup sees it
    # A model fitted before under BackupAndRestore keeps that callback's epoch: this fit
    # (the fine-tune's second phase) would start there.
    model._initial_epoch = None
    began = time.perf_counter()
    history = model.fit(
        train.dataset(start, epochs),  # one iterator across epochs, from where it resumes
        steps_per_epoch=train.steps,
        shuffle=False,  # the input shuffles itself
        validation_data=val,
        epochs=epochs,
        # The planner before the callbacks that keep the run (the backup's): its epoch's
        # plan is then in the run's memory.
        callbacks=[*(callbacks or []), *([planner] if planner else []), stop, *logged,
                   *(resumed.callbacks if resumed is not None else [])],
        verbose=2,
    )
    seconds = time.perf_counter() - began
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    epochs_run, history_from = start + len(hist.get("loss", [])), start
    if resumed is not None:  # the epochs before the resume too, as far as memory goes
        memory = resumed.end()
        hist, history_from = memory.history, memory.history_from
        seconds += memory.seconds_before
    return scored(hist, monitor, epochs_run=epochs_run, seconds=seconds,
                  train_count=train_count, first_epoch=start, history_from=history_from,
                  stopped_by=stop_reason(stop), planner=planner)
