"""A killed training resumed from its backup ends as an uninterrupted run does (fit with
BackupAndRestore, the run's memory and an input addressed by epoch), on a small model."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from pipeline.data.epochs import Epochs
from pipeline.training.fit import fit


class Killed(Exception):
    """Stands for a kill right after a checkpoint."""


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int32")
    return (rng.normal(0, 1, (n, 8)) + np.eye(3, 8)[y]).astype("float32"), y


def train(backup, epochs: int = 6, patience: int = 2):
    """A model with Dropout (random state) fit on shuffled batches with early stopping."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.5),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data(40, 0)
    result = fit(model, Epochs(x, y, 8, seed=3), data(20, 1), epochs=epochs,
                 patience=patience, monitor="val_loss", live_dir=None, train_count=40,
                 backup_dir=backup)
    return model, result


@pytest.fixture
def kill_after(monkeypatch):
    """Make the checkpoint of epoch ``n`` (1-based) the last thing a run does."""
    save = keras.callbacks.BackupAndRestore.on_epoch_end

    def arm(n: int):
        def on_epoch_end(self, epoch, logs=None):
            save(self, epoch, logs)
            if epoch + 1 == n:
                raise Killed
        monkeypatch.setattr(keras.callbacks.BackupAndRestore, "on_epoch_end", on_epoch_end)
        return monkeypatch.undo

    return arm


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path, kill_after):
    whole_model, whole = train(tmp_path / "whole", patience=6)
    assert whole.epochs_run == 6
    backup = tmp_path / "killed"
    disarm = kill_after(3)
    with pytest.raises(Killed):
        train(backup, patience=6)
    disarm()
    assert json.loads((backup / "training_metadata.json").read_text())["epoch"] == 3
    assert sorted(p.name for p in backup.glob("memory-*.json")) == [
        "memory-00001.json", "memory-00002.json", "memory-00003.json"]
    model, resumed = train(backup, patience=6)
    assert resumed.first_epoch == 3 and not backup.exists()
    assert resumed.history == whole.history  # every epoch, those before the kill too
    assert (resumed.best_epoch, resumed.epochs_run) == (whole.best_epoch, whole.epochs_run)
    for a, b in zip(whole_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_remembers_the_epochs_before_the_kill(tmp_path, kill_after):
    """With patience 1 the run stops one epoch after its best; killed after that best epoch,
    the resumed run must stop where the uninterrupted one did and restore the same best."""
    _, whole = train(tmp_path / "whole", epochs=30, patience=1)
    assert whole.epochs_run < 30  # it did stop early
    disarm = kill_after(whole.best_epoch)
    with pytest.raises(Killed):
        train(tmp_path / "killed", epochs=30, patience=1)
    disarm()
    _, resumed = train(tmp_path / "killed", epochs=30, patience=1)
    assert (resumed.best_epoch, resumed.epochs_run) == (whole.best_epoch, whole.epochs_run)
    assert resumed.summary("val_loss")["val_loss"] == whole.summary("val_loss")["val_loss"]


def test_a_run_killed_after_it_ended_is_not_trained_again(tmp_path, kill_after, capsys):
    """Killed after the checkpoint of the epoch where early stopping ended it (before the
    backup was removed): started again, it trains nothing and restores the best epoch."""
    whole_model, whole = train(tmp_path / "whole", epochs=30, patience=1)
    backup = tmp_path / "killed"
    disarm = kill_after(whole.epochs_run)
    with pytest.raises(Killed):
        train(backup, epochs=30, patience=1)
    disarm()
    capsys.readouterr()
    model, resumed = train(backup, epochs=30, patience=1)
    out = capsys.readouterr().out
    assert f"the run was over after epoch {whole.epochs_run}" in out
    assert "Epoch " not in out and not backup.exists()  # no epoch trained again
    assert (resumed.best_epoch, resumed.epochs_run) == (whole.best_epoch, whole.epochs_run)
    assert resumed.history == whole.history
    for a, b in zip(whole_model.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("memory", ["missing", "of another layout"])
def test_a_backup_without_its_memory_resumes_and_says_so(tmp_path, kill_after, capsys,
                                                         memory):
    backup = tmp_path / "killed"
    disarm = kill_after(2)
    with pytest.raises(Killed):
        train(backup)
    disarm()
    for saved in backup.glob("memory-*.json"):
        if memory == "missing":
            saved.unlink()
        else:  # as an older version of the pipeline wrote it
            saved.write_text(json.dumps({"epoch": 2, "history": {}}))
    _, resumed = train(backup)
    assert "resuming without the memory of epoch 2" in capsys.readouterr().out
    assert resumed.first_epoch == 2 and resumed.epochs_run >= 3
    assert resumed.history_from == 2  # the scores of this run's epochs only
    assert len(resumed.history["loss"]) == resumed.epochs_run - 2
