"""The head learns from features, is reproducible, and logs its curves with DVCLive."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import default_placement, head_params

from pipeline.core.params import HeadParams
from pipeline.models.features import Features
from pipeline.training.head import train_head

CLASSES = 3


def blobs(n: int, seed: int) -> Features:
    """Three classes of 64-d features, shifted and scaled like pooled ReLU activations."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    centres = np.random.default_rng(99).normal(0, 1, (CLASSES, 64))
    x = 50 + 20 * (centres[y] + 0.7 * rng.normal(0, 1, (n, 64)))
    return Features(x.astype("float32"), y.astype("int32"),
                    np.array([f"{i}.png" for i in range(n)]),
                    np.array([f"c{i}" for i in range(CLASSES)]))


def train_once(tmp_path, head: HeadParams, name: str):
    keras.utils.set_random_seed(0)
    return train_head(blobs(120, 1), blobs(60, 2), head, tmp_path / name, default_placement())


def test_head_learns_separable_features_and_logs_curves(tmp_path):
    head = head_params(epochs=15, patience=15, learning_rate=0.01)
    model, result = train_once(tmp_path, head, "a")
    assert result.history["val_accuracy"][result.best_epoch - 1] > 0.9
    assert model.get_layer("standardize").mean.shape[-1] == 64
    assert model.output_shape == (None, CLASSES)
    curve = (tmp_path / "a/plots/metrics/eval/accuracy.tsv").read_text().splitlines()
    assert curve[0].split("\t") == ["step", "accuracy"] and len(curve) == 1 + result.epochs_run


def test_early_stopping_restores_the_best_epoch(tmp_path):
    head = head_params(epochs=40, patience=3, learning_rate=0.05, monitor="val_loss")
    model, result = train_once(tmp_path, head, "b")
    val_loss = result.history["val_loss"]
    best = result.best_epoch - 1
    # Stopped early, after epochs worse than the best, so restoring it matters ...
    assert result.best_epoch < result.epochs_run < 40
    assert val_loss[best] == min(val_loss)
    assert val_loss[-1] > 1.01 * val_loss[best]
    # ... and the model handed back is that epoch's: its own validation loss, recomputed.
    val = blobs(60, 2)
    loss = model.evaluate(val.features, val.labels, batch_size=head.batch_size, verbose=0)[0]
    assert loss == pytest.approx(val_loss[best], rel=1e-5, abs=1e-6)


def test_same_seed_same_head(tmp_path):
    head = head_params(epochs=5)
    first, _ = train_once(tmp_path, head, "c")
    second, _ = train_once(tmp_path, head, "d")
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def relu_features(n: int, seed: int, dead: np.ndarray) -> Features:
    """Five classes of pooled-ReLU-like features; the ``dead`` dimensions are 0 unless
    ``seed`` is not the training one: then small, as on images the backbone saw differently."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 5, n)
    centres = np.random.default_rng(7).normal(0, 1, (5, 32))
    x = np.maximum(0, centres[y] + rng.normal(0, 1, (n, 32)))
    x[:, dead] = 0 if seed == 1 else rng.uniform(0, 0.05, (n, dead.size))
    return Features(x.astype("float32"), y.astype("int32"),
                    np.array([f"{i}.png" for i in range(n)]),
                    np.array([f"c{i}" for i in range(5)]))


def test_dimensions_constant_in_training_keep_the_first_val_loss_sensible(tmp_path):
    # Dimensions all zero in train but not in val: by their own zero variance they were
    # standardised into the thousands and the first epoch's val loss ran to ~1e4.
    dead = np.arange(0, 32, 4)
    keras.utils.set_random_seed(0)
    model, result = train_head(relu_features(120, 1, dead), relu_features(60, 2, dead),
                               head_params(epochs=1, patience=1), None, default_placement())
    first = result.history["val_loss"][0]
    assert np.isfinite(first) and first < 10, first
    # The floor is relative to the typical variance, and saved with the head.
    variance = keras.ops.convert_to_numpy(model.get_layer("standardize").variance).ravel()
    assert variance[dead].min() > 0.001 * np.median(variance)
