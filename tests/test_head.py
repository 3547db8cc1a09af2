"""The head learns from features, is reproducible, and logs its curves with DVCLive."""

from __future__ import annotations

import keras
import numpy as np

from pipeline.config import HeadConfig
from pipeline.head import build_head, compile_head
from pipeline.training import fit


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 64-d features, shifted and scaled like pooled ReLU activations."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    centres = np.random.default_rng(99).normal(0, 1, (3, 64))
    x = 50 + 20 * (centres[y] + 0.7 * rng.normal(0, 1, (n, 64)))
    return x.astype("float32"), y.astype("int32")


def train_once(tmp_path, cfg: HeadConfig, name: str):
    keras.utils.set_random_seed(0)
    (x, y), (xv, yv) = blobs(120, 1), blobs(60, 2)
    model = build_head(x, 3, cfg.dropout, cfg.l2)
    compile_head(model, cfg)
    result = fit(model, (x, y), (xv, yv), epochs=cfg.epochs, patience=cfg.patience,
                 monitor=cfg.monitor, live_dir=tmp_path / name, train_count=len(y),
                 batch_size=cfg.batch_size)
    return model, result


def test_head_learns_separable_features_and_logs_curves(tmp_path):
    cfg = HeadConfig(epochs=15, patience=15, learning_rate=0.01)
    model, result = train_once(tmp_path, cfg, "a")
    assert result.history["val_accuracy"][result.best_epoch - 1] > 0.9
    assert model.get_layer("standardize").mean.shape[-1] == 64
    curve = (tmp_path / "a/plots/metrics/eval/accuracy.tsv").read_text().splitlines()
    assert curve[0].split("\t") == ["step", "accuracy"] and len(curve) == 1 + result.epochs_run


def test_early_stopping_restores_the_best_epoch(tmp_path):
    cfg = HeadConfig(epochs=40, patience=3, learning_rate=0.05)
    model, result = train_once(tmp_path, cfg, "b")
    assert result.epochs_run < 40
    xv, yv = blobs(60, 2)
    loss = model.evaluate(xv, yv, verbose=0)[0]
    assert loss == np.float32(loss) and abs(loss - min(result.history["val_loss"])) < 0.05


def test_same_seed_same_head(tmp_path):
    cfg = HeadConfig(epochs=5)
    first, _ = train_once(tmp_path, cfg, "c")
    second, _ = train_once(tmp_path, cfg, "d")
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
