"""``model.fit`` as every training stage runs it: early stopping, DVCLive curves, a summary."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from pipeline.data.epochs import Epochs
from pipeline.training.resume import Memory, best_weights, ended


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
        } | ({"resumed_at_epoch": self.first_epoch + 1} if self.first_epoch else {})


def backup_epoch(backup_dir: str | Path | None) -> int:
    """Epochs a backup in ``backup_dir`` has done (0: none, start afresh)."""
    import json

    meta = Path(backup_dir or "") / "training_metadata.json"
    if backup_dir is None or not meta.is_file():
        return 0
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (ValueError, KeyError, TypeError):
        return 0


def finish(model: keras.Model, backup_dir: str | Path, state: dict, train_count: int
           ) -> FitResult:
    """End a run that was over when it was killed: early stopping's best weights, as the
    run would have restored them, and its scores from the memory; the backup removed."""
    weights = best_weights(backup_dir, state)
    if weights is not None:
        model.set_weights(weights)
    print(f"{backup_dir}: the run was over after epoch {state['epoch']}; restored its best "
          f"epoch {state['best_epoch'] + 1}", flush=True)
    shutil.rmtree(backup_dir, ignore_errors=True)
    epochs_run, seconds, history_from = state["epoch"], state["seconds"], state["history_from"]
    return FitResult(state["history"], state["best_epoch"] + 1, epochs_run, seconds,
                     train_count * (epochs_run - history_from) / seconds if seconds else 0.0,
                     first_epoch=epochs_run, history_from=history_from)


def fit(
    model: keras.Model,
    train: Any,
    val: Any,
    *,
    epochs: int,
    patience: int,
    monitor: str,
    live_dir: str | Path | None,
    train_count: int,
    batch_size: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    backup_dir: str | Path | None = None,
) -> FitResult:
    """``model.fit`` with early stopping (best weights restored) and per-epoch DVCLive logs.

    ``train`` is an input addressed by epoch (``Epochs``), a tf.data dataset or an (x, y)
    tuple of arrays with ``batch_size`` (the global batch); ``val`` a dataset or a tuple.
    ``live_dir`` None: no curves (a worker other than the chief). ``backup_dir``: resume
    there after a kill: BackupAndRestore brings back the weights, optimizer and epoch,
    ``resume.Memory`` early stopping, the scores so far and the random generators, and
    ``Epochs`` the input from that epoch on; the run then ends as an uninterrupted one
    would (a dataset or arrays would restart their shuffle: only ``Epochs`` resumes exactly).
    A run killed when it was over (see ``resume.ended``) is finished from its memory.
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    mode = "min" if monitor.endswith("loss") else "max"
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=patience, restore_best_weights=True, verbose=1
    )
    extra = []
    memory = None
    done = backup_epoch(backup_dir)
    if done and (state := ended(backup_dir, done, epochs)):
        # Killed between its last checkpoint and the backup's removal: the run was over.
        return finish(model, backup_dir, state, train_count)
    if done >= epochs:  # over, but no memory of how it ended: train afresh
        shutil.rmtree(backup_dir, ignore_errors=True)
        done = 0
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
        # dvcyaml=None: the plots are declared in dvc.yaml, not written by DVCLive;
        # save_dvc_exp=False: `dvc exp run` owns the experiment, not the stage. After a
        # kill the curves go on from the last backed-up epoch.
        live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False, resume=done > 0)
        if done:
            live.step = done  # DVCLive's own resume restarts at 0 after a one-epoch run
        extra.insert(0, DVCLiveCallback(live=live))  # logs an epoch before it is backed up
    # A tf.data input batches and shuffles itself (seeded); arrays are shuffled by Keras.
    kwargs = {"shuffle": False} if batch_size is None else {"batch_size": batch_size,
                                                            "shuffle": True}
    if isinstance(train, Epochs):
        # One iterator across epochs (steps_per_epoch), starting at the epoch fit resumes at.
        kwargs |= {"x": train.dataset(done, epochs), "steps_per_epoch": train.steps}
    elif isinstance(train, tuple):
        kwargs["x"], kwargs["y"] = train
    else:
        kwargs["x"] = train
    # BackupAndRestore leaves its epoch on the model: a later fit (the fine-tune's second
    # phase) would start there.
    model._initial_epoch = None
    start = time.perf_counter()
    history = model.fit(
        **kwargs,
        validation_data=val,
        epochs=epochs,
        callbacks=[*(callbacks or []), stop, *extra],
        verbose=2,
    )
    seconds = time.perf_counter() - start
    hist = {k: [float(v) for v in vals] for k, vals in history.history.items()}
    run = len(hist.get("loss", []))
    history_from = done
    if memory is not None:  # the epochs before a resume too, as far as it remembers them
        hist, history_from = memory.history, memory.history_from
        seconds += memory.seconds_before
    timed = done + run - history_from  # the epochs the history and the seconds cover
    scores = hist.get(monitor, [])
    if scores:  # the first best, as EarlyStopping picks it
        pick = min if mode == "min" else max
        best = history_from + scores.index(pick(scores)) + 1
    else:
        best = done + run
    return FitResult(hist, best, done + run, seconds,
                     train_count * timed / seconds if seconds else 0.0, first_epoch=done,
                     history_from=history_from)
