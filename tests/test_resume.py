"""A killed training resumed from its backup ends as an uninterrupted run does (the fit
handed the backup: BackupAndRestore, the run's memory and an input addressed by epoch),
on a small model."""

from __future__ import annotations

import json
import shutil

import keras
import numpy as np
import pytest
from helpers import Killed, kill_after_checkpoint

from pipeline.data.epochs import Epochs
from pipeline.runs.resume import Resume
from pipeline.training.fit import fit


def data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype("int32")
    return (rng.normal(0, 1, (n, 8)) + np.eye(3, 8)[y]).astype("float32"), y


def train(backup, epochs: int = 6, patience: int = 2, live_dir=None):
    """A model with Dropout (random state) fit on shuffled batches with early stopping."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.5),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(keras.optimizers.Adam(0.05), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y = data(40, 0)
    result = fit(model, Epochs(x, y, 8, seed=3), data(20, 1), epochs=epochs,
                 patience=patience, monitor="val_loss", live_dir=live_dir, train_count=40,
                 resume=Resume(backup))
    return model, result


@pytest.fixture
def kill_after(monkeypatch):
    """Make the checkpoint of epoch ``n`` (1-based) the last thing a run does."""

    def arm(n: int):
        kill_after_checkpoint(monkeypatch, n)
        return monkeypatch.undo

    return arm


def assert_same_run(a: tuple, b: tuple) -> None:
    (model_a, run_a), (model_b, run_b) = a, b
    assert run_a.history == run_b.history  # every epoch, those before the kill too
    assert (run_a.best_epoch, run_a.epochs_run) == (run_b.best_epoch, run_b.epochs_run)
    for x, y in zip(model_a.get_weights(), model_b.get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """An uninterrupted run of 8 epochs (patience 8: no early stop), with a backup."""
    done = train(tmp_path_factory.mktemp("whole") / "backup", epochs=8, patience=8)
    assert done[1].epochs_run == 8
    return done


def killed_at(folder, kill_after, epoch: int):
    disarm = kill_after(epoch)
    with pytest.raises(Killed):
        train(folder, epochs=8, patience=8)
    disarm()
    assert json.loads((folder / "training_metadata.json").read_text())["epoch"] == epoch
    return folder


def test_a_resumed_run_ends_as_an_uninterrupted_one(tmp_path, kill_after, whole):
    backup = killed_at(tmp_path / "killed", kill_after, 6)
    # The last 3 memories, and the best weights they name (an early epoch's here).
    kept = sorted(p.name for p in backup.iterdir() if p.name.startswith(("memory", "best")))
    best = {json.loads((backup / m).read_text())["best_weights"] for m in kept
            if m.startswith("memory")}
    assert [m for m in kept if m.startswith("memory")] == [
        "memory-00004.json", "memory-00005.json", "memory-00006.json"]
    assert [b for b in kept if b.startswith("best")] == sorted(best)
    resumed = train(backup, epochs=8, patience=8)
    assert resumed[1].first_epoch == 6 and not backup.exists()
    assert_same_run(whole, resumed)


def test_a_checkpoint_whose_epoch_was_not_written_is_mended(tmp_path, kill_after, whole,
                                                            capsys):
    """Keras writes the weights, then the epoch: killed between the two, the checkpoint
    holds epoch 4's weights under epoch 3. The memory's digest tells, and the run goes on
    after epoch 4."""
    backup = killed_at(tmp_path / "killed", kill_after, 4)
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 3, "batch": 0}))
    resumed = train(backup, epochs=8, patience=8)
    assert "holds the weights of epoch 4 recorded as epoch 3" in capsys.readouterr().err
    assert_same_run(whole, resumed)


def test_weights_cut_short_resume_from_the_checkpoint_before(tmp_path, kill_after, whole,
                                                             capsys):
    """Killed while Keras wrote epoch 5's weights: it had copied epoch 4's checkpoint to
    .bkp first, and the weights file is cut short."""
    backup = killed_at(tmp_path / "killed", kill_after, 4)
    for name in ("latest.weights.h5", "training_metadata.json"):
        shutil.copyfile(backup / name, backup / f"{name}.bkp")
    (backup / "latest.weights.h5").write_bytes(b"cut short")
    resumed = train(backup, epochs=8, patience=8)
    assert "cannot be read: resuming from the checkpoint before it" in capsys.readouterr().err
    assert resumed[1].first_epoch == 4
    assert_same_run(whole, resumed)


def test_a_first_checkpoint_cut_short_starts_afresh(tmp_path, kill_after, whole, capsys):
    """Killed while the first weights file was written (no checkpoint before it): nothing
    to resume; the run starts afresh and ends as the uninterrupted one."""
    backup = killed_at(tmp_path / "killed", kill_after, 1)
    (backup / "latest.weights.h5").write_bytes(b"cut short")
    (backup / "training_metadata.json").unlink()
    resumed = train(backup, epochs=8, patience=8)
    assert "no checkpoint can be read; starting afresh" in capsys.readouterr().err
    assert resumed[1].first_epoch == 0
    assert_same_run(whole, resumed)


def test_a_run_over_whose_last_epoch_was_not_recorded_is_finished(tmp_path, kill_after,
                                                                  whole, capsys):
    """Killed between the last epoch's weights and its record: the digest says the run was
    over; it is finished from the memory (best weights, scores, curves), not trained on."""
    backup = tmp_path / "killed"
    live = tmp_path / "live"
    disarm = kill_after(8)
    with pytest.raises(Killed):
        train(backup, epochs=8, patience=8, live_dir=live)
    disarm()
    (backup / "training_metadata.json").write_text(json.dumps({"epoch": 7, "batch": 0}))
    shutil.rmtree(live)  # as `dvc repro` removes the stage's outputs before it runs it
    capsys.readouterr()
    resumed = train(backup, epochs=8, patience=8, live_dir=live)
    out = capsys.readouterr().out
    assert "the run was over after epoch 8" in out and "Epoch " not in out
    assert_same_run(whole, resumed)
    steps = (live / "plots/metrics/train/loss.tsv").read_text().split()[2::2]
    assert [int(s) for s in steps] == list(range(8))


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
    assert "resuming without the memory of epoch 2" in capsys.readouterr().err
    assert resumed.first_epoch == 2 and resumed.epochs_run >= 3
    assert resumed.history_from == 2  # the scores of this run's epochs only
    assert len(resumed.history["loss"]) == resumed.epochs_run - 2
