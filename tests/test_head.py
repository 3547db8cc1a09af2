"""The head learns from features, is reproducible, and logs its curves with DVCLive."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import default_placement, head_params

from pipeline.core.params import HeadParams
from pipeline.models.features import Features
from pipeline.training.head_recipes import train_head

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


# --------------------------------------------------------------------------- head.solver: lbfgs


def mixed(n: int, seed: int, classes: int = 5, width: int = 48, noise: float = 3.0
          ) -> Features:
    """Overlapping classes of ReLU-like features: a linear head gets most, not all, right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    centres = np.random.default_rng(5).normal(0, 1, (classes, width))
    x = np.maximum(0, 2 + centres[y] + noise * rng.normal(0, 1, (n, width)))
    return Features(x.astype("float32"), y.astype("int32"),
                    np.array([f"{i}.png" for i in range(n)]),
                    np.array([f"c{i}" for i in range(classes)]))


def test_lbfgs_and_keras_heads_agree(tmp_path):
    """The two solvers fit the same head: on data the test makes, the same accuracy within
    noise and mostly the same predictions; the L-BFGS head saved and loaded by Keras."""
    from pipeline.models.saving import load_model
    from pipeline.training.head_recipes import fit_head

    train, val, test = mixed(400, 1), mixed(200, 2), mixed(1000, 3)
    head = head_params(epochs=60, patience=8, learning_rate=0.003, dropout=0.2, l2=1e-4)
    keras.utils.set_random_seed(0)
    net, _ = train_head(train, val, head, None, default_placement())
    ours, result = fit_head(train, val, head, None)
    ours.save(tmp_path / "head.keras")
    loaded = load_model(tmp_path / "head.keras")
    keras_pred = net.predict(test.features, verbose=0).argmax(1)
    lbfgs_pred = loaded.predict(test.features, verbose=0).argmax(1)
    keras_acc, lbfgs_acc = (float((p == test.labels).mean()) for p in (keras_pred, lbfgs_pred))
    assert 0.6 < keras_acc < 0.95  # neither trivial nor hopeless
    assert abs(lbfgs_acc - keras_acc) < 0.03, (lbfgs_acc, keras_acc)
    assert (lbfgs_pred == keras_pred).mean() > 0.9
    assert result.best_epoch <= result.epochs_run <= head.epochs


def test_the_loss_gradient_is_exact():
    from scipy.optimize import approx_fprime

    from pipeline.training.softmax import Objective

    rng = np.random.default_rng(0)
    z, y = rng.normal(size=(40, 7)), rng.integers(0, 4, 40)
    loss = Objective(z.astype("float64"), y, 4, l2=0.01, dropout=0.3)
    theta = rng.normal(size=7 * 4 + 4) * 0.5
    numeric = approx_fprime(theta, lambda t: loss(t)[0], 1e-4)
    np.testing.assert_allclose(loss(theta)[1], numeric, atol=5e-4)


@pytest.mark.parametrize("rate", [0.2, 0.5])
def test_marginalised_dropout_is_dropouts_expected_loss(rate):
    """The deterministic penalty replaces dropout by its expected extra loss: the loss of
    the L-BFGS objective is the mean loss of the same head over many dropout masks."""
    from pipeline.training.softmax import Objective, softmax

    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(60, 8)), rng.integers(0, 4, 60)
    w, b = rng.normal(size=(8, 4)) * 0.3, rng.normal(size=4) * 0.1
    theta = np.concatenate([w.ravel(), b])
    ours = Objective(z, y, 4, l2=0.0, dropout=rate)(theta)[0]
    plain = Objective(z, y, 4, l2=0.0, dropout=0.0)(theta)[0]
    losses = []
    for _ in range(4000):
        kept = z * (rng.random(z.shape) > rate) / (1 - rate)
        q = softmax(kept @ w + b)
        losses.append(-np.log(q[np.arange(len(y)), y]).mean())
    expected, spread = np.mean(losses), np.std(losses) / np.sqrt(len(losses))
    assert expected - plain > 0.01  # dropout costs something here ...
    assert ours == pytest.approx(expected, abs=max(4 * spread, 0.1 * (expected - plain)))


def test_lbfgs_early_stopping_keeps_the_best_iterate():
    """An over-fitting fit (few images, many features, no penalty) stops after ``patience``
    iterations without a better validation loss, and hands back the best iterate."""
    from pipeline.models.head_file import standardize
    from pipeline.training.head_recipes import fit_head
    from pipeline.training.softmax import cross_entropy

    train, val = mixed(40, 4, width=200, noise=4.0), mixed(200, 5, width=200, noise=4.0)
    head = head_params(epochs=500, patience=4, dropout=0.0, l2=0.0, monitor="val_loss")
    model, result = fit_head(train, val, head, None)
    val_loss = result.history["val_loss"]
    assert result.best_epoch + 4 == result.epochs_run < 500
    assert val_loss[result.best_epoch - 1] == min(val_loss)
    assert val_loss[-1] > val_loss[result.best_epoch - 1]
    z = standardize(val.features, model.mean, model.variance).astype("float64")
    q = np.exp(z @ model.kernel + model.bias)
    q /= q.sum(axis=1, keepdims=True)
    assert cross_entropy(q, val.labels) == pytest.approx(val_loss[result.best_epoch - 1],
                                                         rel=1e-5)


@pytest.mark.parametrize("l2", [0.0, 1e-4])
def test_the_head_file_is_the_one_keras_writes(tmp_path, l2):
    """The .keras file written without Keras: the config and variables Keras itself saves
    for build_head with those weights, the same outputs once loaded, the same bytes on
    every write."""
    import io
    import json
    import zipfile

    import h5py

    from pipeline.models.head import build_head, standardization
    from pipeline.models.head_file import HeadFile
    from pipeline.models.saving import load_model
    from pipeline.runtimes.numpy_head import head_probabilities

    train = mixed(50, 6, width=12)
    rng = np.random.default_rng(2)
    mean, variance = (v.astype("float32") for v in standardization(train.features))
    ours = HeadFile(mean, variance, rng.normal(size=(12, 5)).astype("float32"),
                    rng.normal(size=5).astype("float32"), 0.3, l2)
    ours.save(tmp_path / "ours.keras")
    net = build_head(train.features, 5, 0.3, l2)
    net.get_layer("predictions").set_weights([ours.kernel, ours.bias])
    net.save(tmp_path / "keras.keras")

    def parts(path):
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            store = h5py.File(io.BytesIO(archive.read("model.weights.h5")))
        found = {}
        store.visititems(lambda name, item: found.__setitem__(name, (
            dict(item.attrs), item[()].tolist() if isinstance(item, h5py.Dataset) else None,
            str(getattr(item, "dtype", "")))))
        return config, found

    assert parts(tmp_path / "ours.keras") == parts(tmp_path / "keras.keras")
    x = mixed(30, 7, width=12).features
    expected = net.predict(x, verbose=0)
    np.testing.assert_array_equal(load_model(tmp_path / "ours.keras").predict(x, verbose=0),
                                  expected)
    np.testing.assert_allclose(head_probabilities(tmp_path / "ours.keras", x), expected,
                               rtol=1e-5, atol=1e-6)  # evaluate_head's NumPy forward pass
    first = (tmp_path / "ours.keras").read_bytes()
    ours.save(tmp_path / "ours.keras")
    assert (tmp_path / "ours.keras").read_bytes() == first


def test_lbfgs_curves_are_dvclives(tmp_path):
    """The L-BFGS curves, written without DVCLive, are the files DVCLive writes for the
    same scores (what the report and `dvc plots` read)."""
    from dvclive import Live

    from pipeline.training.head_recipes import log_curves

    history = {"loss": [1.5, 1.2, 1.1], "accuracy": [0.3, 0.5, 0.6],
               "val_loss": [1.6, 1.4, 1.45], "val_accuracy": [0.2, 0.4, 0.41]}
    (tmp_path / "ours" / "plots" / "metrics" / "train").mkdir(parents=True)
    (tmp_path / "ours" / "plots" / "metrics" / "train" / "stale.tsv").write_text("step\n")
    log_curves(tmp_path / "ours", history)
    with Live(str(tmp_path / "theirs"), dvcyaml=None, save_dvc_exp=False) as live:
        for step in range(3):
            for key, values in history.items():
                name = f"eval/{key[4:]}" if key.startswith("val_") else f"train/{key}"
                live.log_metric(name, values[step])
            live.next_step()
    files = {side: {p.relative_to(tmp_path / side): p.read_bytes()
                    for p in (tmp_path / side).rglob("*") if p.is_file()}
             for side in ("ours", "theirs")}
    assert files["ours"] == files["theirs"]


def test_the_lbfgs_stage_starts_no_tensorflow_and_only_the_chief_writes(tmp_path):
    """stages/train_head.py with head.solver lbfgs: the head, its card and curves, without
    importing TensorFlow, Keras or DVCLive; a cluster's worker 1 writes nothing."""
    import json
    import os
    import subprocess
    import sys

    from helpers import STAGES, snapshot, write_params

    project = tmp_path / "project"
    write_params(project, {"head.solver": "lbfgs", "head.epochs": 30})
    for split, seed in (("train", 1), ("val", 2)):
        mixed(200 if split == "train" else 80, seed).save(
            project / "data" / "features" / f"{split}.npz")
    (project / "data" / "features" / "info.json").write_text(json.dumps(
        {"arch": "resnet50", "image_size": 32, "weights": "random", "images_per_second": 1.0}))
    stage = str(STAGES / "train_head.py")
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('loaded', *(m in sys.modules for m in "
            "('tensorflow', 'keras', 'dvclive'))))\n"
            f"sys.argv = [{stage!r}]\n"
            f"runpy.run_path({stage!r}, run_name='__main__')\n")

    def run(env: dict) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True,
                              text=True, env=os.environ | env, timeout=300, check=False)

    before = snapshot(project)
    worker = run({"TF_CONFIG": json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                           "task": {"type": "worker", "index": 1}})})
    assert worker.returncode == 0, worker.stderr[-2000:]
    assert "worker 1 done; the chief writes the outputs" in worker.stdout + worker.stderr
    assert snapshot(project) == before
    chief = run({})
    assert chief.returncode == 0, chief.stderr[-2000:]
    assert "loaded False False False" in chief.stdout
    card = json.loads((project / "models" / "head.json").read_text())
    assert card["solver"] == "lbfgs" and card["distribute"] == "numpy x1 float32"
    assert card["val_accuracy"] > 0.5 and card["trainable_params"] == 48 * 5 + 5
    assert (project / "dvclive" / "head" / "plots" / "metrics" / "eval" / "loss.tsv").exists()
    metrics = json.loads((project / "metrics" / "train" / "head.json").read_text())
    assert metrics["val_accuracy"] == card["val_accuracy"]


def test_an_lbfgs_head_out_of_budget_stops_with_its_best_iterate(monkeypatch):
    """head.budget_seconds: the fit ends at the iteration that leaves only the budget's
    reserve (here each iteration costs a second of a fake clock), and what it hands back
    is a head as good as its best iterate, with the budget on its card."""
    from pipeline.runs.budget import Budget
    from pipeline.training import head_recipes as head_module

    ticks = iter(range(1, 10_000))
    monkeypatch.setattr(head_module.Budget, "of_process", classmethod(
        lambda cls, seconds: None if seconds is None else Budget(seconds, 0.0,
                                                                 clock=lambda: next(ticks))))
    train, val = mixed(400, 1), mixed(200, 2)
    head = head_params(epochs=500, patience=500, budget_seconds=10.0)
    model, result = head_module.fit_head(train, val, head, None)
    # 10 s less the reserve (2 s + 2 %): the clock reads 8 after the 8th iteration.
    assert result.stopped_by == "budget" and result.epochs_run == 8
    assert result.summary(head.monitor)["budget"] == {"budget_seconds": 10.0}
    scores = result.history[head.monitor]
    assert scores[result.best_epoch - 1] == min(scores)
    _, full = head_module.fit_head(train, val, head_params(epochs=500, patience=500),
                                            None)
    assert full.stopped_by != "budget" and full.epochs_run > 8
    from pipeline.models.head_file import standardize

    z = standardize(val.features, model.mean, model.variance)
    accuracy = float(((z @ model.kernel + model.bias).argmax(1) == val.labels).mean())
    assert accuracy > 0.5  # five classes: a head, not its zero start


def test_a_keras_head_out_of_budget_ends_with_a_valid_model(tmp_path):
    """head.solver keras with a budget already spent (this process is older than it):
    the fit ends in its first epoch, by the budget, and the head still predicts."""
    head = head_params(epochs=40, patience=40, learning_rate=0.01, budget_seconds=0.5)
    model, result = train_once(tmp_path, head, "budget")
    assert result.stopped_by in ("budget", "deadline") and result.epochs_run == 1
    q = model.predict(blobs(10, 3).features, verbose=0)
    assert np.isfinite(q).all() and np.allclose(q.sum(axis=1), 1, atol=1e-5)
