"""params.yaml's distribute section: TensorFlow's strategies and mixed precision, for real on
this CPU (two logical devices, two worker processes on loopback), bounded in time."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from helpers import ROOT, run_stage, snapshot, write_params

from pipeline.core.params import DistributeParams
from pipeline.models.features import Features
from pipeline.runs.placement import (
    DistributeError,
    is_chief,
    place,
    recipe_distribute,
    set_precision,
    task,
)

HERE = Path(__file__).resolve().parent


def test_a_recipe_precision_replaces_the_sections_where_the_cpu_has_it(tmp_path):
    """A recipe's ``precision``: ``distribute`` keeps the section's, float32 and bfloat16
    say which, auto takes bfloat16 only where /proc/cpuinfo lists it in hardware."""
    section = DistributeParams(strategy="auto", mixed_precision="none")
    native, plain = tmp_path / "native", tmp_path / "plain"
    native.write_text("model name\t: AMD EPYC\nflags\t\t: fpu avx2 avx512f avx512_bf16\n")
    plain.write_text("model name\t: Intel Xeon\nflags\t\t: fpu avx2 avx512f\n")
    assert recipe_distribute(section, "distribute") is section
    assert recipe_distribute(section, "bfloat16", plain).mixed_precision == "mixed_bfloat16"
    assert recipe_distribute(
        section.model_copy(update={"mixed_precision": "mixed_bfloat16"}), "float32"
    ).mixed_precision == "none"
    assert recipe_distribute(section, "auto", native).mixed_precision == "mixed_bfloat16"
    assert recipe_distribute(section, "auto", plain).mixed_precision == "none"
    assert recipe_distribute(section, "auto", tmp_path / "absent").mixed_precision == "none"
    assert recipe_distribute(section, "auto", native).strategy == "auto"


def test_chief_is_the_chief_task_else_worker_zero(monkeypatch):
    assert is_chief(None, 0, {})  # one machine: its own chief
    assert is_chief("chief", 0, {"chief": ["a"], "worker": ["b"]})
    assert not is_chief("worker", 0, {"chief": ["a"], "worker": ["b"]})
    assert is_chief("worker", 0, {"worker": ["a", "b"]})
    assert not is_chief("worker", 1, {"worker": ["a", "b"]})
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker",
                                                                         "index": 1}}))
    assert task() == ("worker", 1, {"worker": ["127.0.0.1:1", "127.0.0.1:2"]})
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(DistributeError, match="TF_CONFIG is not valid JSON"):
        task()


def test_auto_is_the_default_strategy_without_gpus_and_multi_worker_needs_tf_config(
        monkeypatch):
    placement = place(DistributeParams(strategy="auto", mixed_precision="none"))
    assert (placement.name, placement.replicas, placement.chief) == ("default", 1, True)
    assert placement.global_batch(32) == 32 and placement.label() == "default x1 float32"
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(DistributeError, match="multi_worker needs TF_CONFIG"):
        place(DistributeParams(strategy="multi_worker", mixed_precision="none"))


def test_mirrored_over_two_cpu_devices_trains_as_the_default_strategy(tmp_path):
    """The same global batch on one device and on two replicas. The training input is
    addressed by epoch (stateless shuffles), so both strategies see the same batches in the
    same order; what differs is the order of summation (two half-batches all-reduced, and
    oneDNN's kernels for a batch of 4 against one of 8). Tolerance: every epoch's loss and
    validation loss within 1e-3 relative (2e-7 measured here), accuracies equal, for the
    head (5 epochs) and a ResNet50 fine-tune (2 epochs, random weights) alike."""
    out = tmp_path / "scores.json"
    proc = subprocess.run([sys.executable, str(HERE / "distributed.py"), "mirrored", str(out),
                           str(tmp_path / "work")], capture_output=True, text=True,
                          timeout=400, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scores = json.loads(out.read_text())
    default, mirrored = scores["default"], scores["mirrored"]
    assert (default["replicas"], mirrored["replicas"]) == (1, 2)
    assert mirrored["label"] == "mirrored x2 float32"
    for model, epochs in (("head", 5), ("finetune", 2)):
        ours, theirs = default[model], mirrored[model]
        assert len(ours["loss"]) == len(theirs["loss"]) == epochs
        for key in ("loss", "val_loss"):
            for a, b in zip(ours[key], theirs[key], strict=True):
                assert math.isclose(a, b, rel_tol=1e-3), (model, key, ours[key], theirs[key])
        for key in ("accuracy", "val_accuracy"):
            assert ours[key] == theirs[key], (model, key)
    assert default["head"]["val_accuracy"][-1] >= 0.9  # the head learns the blobs
    assert default["head"]["loss"][-1] < default["head"]["loss"][0] / 10
    # The fine-tune trains (24 images, 2 epochs, random weights: its training loss tells;
    # its accuracies and validation loss move by chance at this size).
    assert default["finetune"]["loss"][-1] < default["finetune"]["loss"][0]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def two_workers(command, cwd: list[Path], timeout: float) -> list[tuple[int, str, str]]:
    """Run ``command(index)`` as workers 0 and 1 of a cluster on two loopback ports (their
    TF_CONFIG set as a Kubernetes operator would); (exit code, stdout, stderr) of each."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(2)]
    procs = []
    for index in range(2):
        env = os.environ | {"TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                     "task": {"type": "worker",
                                                              "index": index}})}
        procs.append(subprocess.Popen(command(index), cwd=cwd[index], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()
    return [(p.returncode, *out) for p, out in zip(procs, outs, strict=True)]


def feature_project(folder: Path, changes: dict) -> Path:
    """A project folder holding what train_head reads: params.yaml and cached features."""
    write_params(folder, changes)
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("val", 30)):
        y = rng.integers(0, 3, n).astype("int32")
        x = (rng.normal(0, 1, (n, 16)) + 3 * np.eye(3, 16)[y]).astype("float32")
        Features(x, y, np.array([f"{i}.png" for i in range(n)]),
                 np.array(["a", "b", "c"])).save(folder / f"data/features/{split}.npz")
    (folder / "data/features/info.json").write_text(json.dumps(
        {"arch": "resnet50", "image_size": 32, "weights": "random", "images_per_second": 1.0}))
    return folder


def test_multi_worker_two_processes_on_loopback_only_the_chief_writes(tmp_path):
    # Each worker in a folder of its own, as on two machines: the other's must not change.
    settings = {"distribute.strategy": "multi_worker", "head.solver": "keras",
                "head.epochs": 3, "head.patience": 3}
    projects = [feature_project(tmp_path / f"worker{i}", settings) for i in range(2)]
    before = [snapshot(p) for p in projects]
    runs = two_workers(lambda index: [sys.executable, str(ROOT / "stages/train_head.py")],
                       cwd=projects, timeout=240)
    for code, stdout, stderr in runs:
        assert code == 0, stdout[-2000:] + stderr[-3000:]
    outs = [(stdout, stderr) for _, stdout, stderr in runs]
    assert "worker 1 done; the chief writes the outputs" in outs[1][0]
    assert snapshot(projects[1]) == before[1]  # worker 1 wrote nothing
    project = projects[0]
    new = set(snapshot(project)) - set(before[0])
    written = {str(Path(p).relative_to(project)) for p in new}
    assert written >= {"models/head.keras", "models/head.json", "metrics/train/head.json",
                       "reports/runs/train/head.json", "dvclive/head"}
    facts = json.loads((project / "reports/runs/train/head.json").read_text())
    assert facts["distribute"] == "multi_worker x2 float32"
    assert json.loads((project / "models/head.json").read_text())["replicas"] == 2


def test_workers_resuming_at_different_epochs_stop_with_a_message(tmp_path):
    """Worker 0's backup is after epoch 2, worker 1 has none: both stop at once, naming the
    epochs and the fix, instead of waiting for each other for ever."""
    runs = two_workers(lambda index: [sys.executable, str(HERE / "distributed.py"), "disagree",
                                      str(tmp_path / f"error-{index}.txt"), str(tmp_path)],
                       cwd=[tmp_path, tmp_path], timeout=180)
    for index, (code, _, stderr) in enumerate(runs):
        assert code == 3, stderr[-3000:]
        message = (tmp_path / f"error-{index}.txt").read_text()
        assert "backups are after epochs [0, 2]" in message
        assert "remove .cache/backup on every worker" in message


def test_mixed_bfloat16_trains_with_finite_loss_and_float32_outputs(tmp_path):
    """bfloat16 compute on this CPU (AVX512-BF16 or emulated): a head and a tiny Wide ResNet
    train with a finite loss, the softmax stays float32, and bfloat16 backbone features
    stay close to float32 ones."""
    import tensorflow as tf
    from helpers import head_params, wrn_recipe

    from pipeline.models.features import Extractor
    from pipeline.training.head_recipes import train_head
    from pipeline.training.inputs import Splits
    from pipeline.training.scratch import train_scratch

    project = feature_project(tmp_path, {})
    train = Features.load(project / "data/features/train.npz")
    val = Features.load(project / "data/features/val.npz")
    images = np.random.default_rng(1).uniform(0, 255, (12, 32, 32, 3)).astype("float32")
    folder = tmp_path / "images"
    folder.mkdir()
    files = []
    for i, img in enumerate(images.astype("uint8")):
        files.append(str(folder / f"{i}.png"))
        keras.utils.save_img(files[-1], img)
    splits = Splits((np.array(files), np.arange(12) % 3), (np.array(files), np.arange(12) % 3),
                    ["a", "b", "c"])
    features = {}
    try:
        for policy in ("none", "mixed_bfloat16"):
            placement = place(DistributeParams(strategy="default", mixed_precision=policy))
            keras.utils.set_random_seed(0)
            backbone = keras.applications.ResNet50(include_top=False, weights=None,
                                                   input_shape=(32, 32, 3), pooling="avg")
            ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(12))).batch(4)
            features[policy] = Extractor(backbone)(ds, 12)[0]
        assert backbone.compute_dtype == "bfloat16" and placement.label().endswith("bfloat16")
        model, result = train_head(train, val, head_params(epochs=2, patience=2), None,
                                   placement)
        assert model.output.dtype == "float32"
        assert all(np.isfinite(result.history["loss"]))
        done = train_scratch("tiny", wrn_recipe(depth=10, width=1, image_size=32, epochs=1,
                                                batch_size=4, patience=2),
                             splits, seed=0, live_dir=None, placement=placement)
        assert done.model.output.dtype == "float32"
        assert np.isfinite(done.result.history["loss"]).all()
    finally:
        set_precision("none")
    f32, bf16 = features["none"], features["mixed_bfloat16"]
    assert bf16.dtype == np.float32 and f32.shape == bf16.shape
    # bfloat16 keeps 8 bits of mantissa: per-image features agree in direction.
    cos = (f32 * bf16).sum(1) / np.linalg.norm(f32, axis=1) / np.linalg.norm(bf16, axis=1)
    assert cos.min() > 0.98, cos.min()


def test_stage_refuses_multi_worker_without_tf_config(tmp_path, monkeypatch):
    """A stage that places a network (here the keras head; the lbfgs head runs none, and
    the features stage before it refuses the same way) names the missing cluster."""
    project = feature_project(tmp_path, {"distribute.strategy": "multi_worker",
                                         "head.solver": "keras"})
    monkeypatch.delenv("TF_CONFIG", raising=False)
    run = run_stage(project, "train_head")
    assert run.returncode != 0
    assert "distribute.strategy: multi_worker needs TF_CONFIG" in run.stderr
    assert not (project / "models").exists()
