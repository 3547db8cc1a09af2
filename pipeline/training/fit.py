"""``model.fit`` as every training stage runs it: early stopping, DVCLive curves, a summary."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras


def trainable_params(model: keras.Model) -> int:
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


@dataclass(frozen=True)
class FitResult:
    history: dict[str, list[float]]  # from epoch first_epoch + 1 on
    best_epoch: int  # 1-based, the epoch whose weights were restored
    epochs_run: int  # including those before a resume
    seconds: float  # of this run (after a resume: the resumed epochs only)
    images_per_second: float
    first_epoch: int = 0  # epochs done before this run resumed from a backup

    def summary(self, monitor: str) -> dict[str, Any]:
        i = self.best_epoch - 1 - self.first_epoch
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

    ``train``/``val`` are tf.data datasets, or (x, y) tuples of arrays with ``batch_size``
    (the global batch). ``live_dir`` None: no curves (a worker other than the chief).
    ``backup_dir``: resume there after a kill (BackupAndRestore); the weights, optimizer
    and epoch come back, but not early stopping's memory of the epochs before the kill,
    nor the input pipeline's place in its shuffle and augmentation streams (Keras makes
    the iterator inside ``fit``; TensorFlow cannot checkpoint it from outside).
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    mode = "min" if monitor.endswith("loss") else "max"
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=patience, restore_best_weights=True, verbose=1
    )
    extra = []
    done = backup_epoch(backup_dir)
    if done >= epochs:  # killed between the last backup and its removal: nothing to resume
        shutil.rmtree(backup_dir, ignore_errors=True)
        done = 0
    if backup_dir is not None:
        # Weights, optimizer and epoch after every epoch, removed when fit ends;
        # double_checkpoint: a kill while the weights file is written leaves the previous one.
        extra.append(keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True))
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
    if isinstance(train, tuple):
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
    scores = hist.get(monitor, [])
    if scores:
        pick = min if mode == "min" else max
        best = scores.index(pick(scores)) + 1
    else:
        best = run
    return FitResult(hist, done + best, done + run, seconds,
                     train_count * run / seconds if seconds else 0.0, first_epoch=done)
