"""``model.fit`` as every training stage runs it: early stopping, DVCLive curves, a summary."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras


def trainable_params(model: keras.Model) -> int:
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))


@dataclass(frozen=True)
class FitResult:
    history: dict[str, list[float]]
    best_epoch: int  # 1-based, the epoch whose weights were restored
    epochs_run: int
    seconds: float
    images_per_second: float

    def summary(self, monitor: str) -> dict[str, Any]:
        i = self.best_epoch - 1
        best = {k: round(float(v[i]), 6) for k, v in self.history.items() if len(v) > i}
        return {
            "best_epoch": self.best_epoch,
            "epochs_run": self.epochs_run,
            "monitor": monitor,
            **{k: best[k] for k in sorted(best) if k != "learning_rate"},
            "train_seconds": round(self.seconds, 1),
            "train_images_per_second": round(self.images_per_second, 1),
        }


def fit(
    model: keras.Model,
    train: Any,
    val: Any,
    *,
    epochs: int,
    patience: int,
    monitor: str,
    live_dir: str | Path,
    train_count: int,
    batch_size: int | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
) -> FitResult:
    """``model.fit`` with early stopping (best weights restored) and per-epoch DVCLive logs.

    ``train``/``val`` are tf.data datasets, or (x, y) tuples of arrays with ``batch_size``.
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    mode = "min" if monitor.endswith("loss") else "max"
    stop = keras.callbacks.EarlyStopping(
        monitor=monitor, mode=mode, patience=patience, restore_best_weights=True, verbose=1
    )
    # dvcyaml=None: the plots are declared in dvc.yaml, not written by DVCLive;
    # save_dvc_exp=False: `dvc exp run` owns the experiment, not the stage.
    live = Live(str(live_dir), dvcyaml=None, save_dvc_exp=False)
    # A tf.data input batches and shuffles itself (seeded); arrays are shuffled by Keras.
    kwargs = {"shuffle": False} if batch_size is None else {"batch_size": batch_size,
                                                            "shuffle": True}
    if isinstance(train, tuple):
        kwargs["x"], kwargs["y"] = train
    else:
        kwargs["x"] = train
    start = time.perf_counter()
    history = model.fit(
        **kwargs,
        validation_data=val,
        epochs=epochs,
        callbacks=[*(callbacks or []), stop, DVCLiveCallback(live=live)],
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
    return FitResult(hist, best, run, seconds, train_count * run / seconds if seconds else 0.0)
