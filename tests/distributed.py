"""Run by tests/test_distribute.py in a process of its own: TensorFlow's devices and a
MultiWorkerMirroredStrategy must be set up before TensorFlow runs anything.

    python tests/distributed.py mirrored OUT.json WORKDIR

splits the CPU into two logical devices and trains the head and a tiny ResNet50
fine-tune under the default strategy and under ``mirrored`` (two replicas), writing the
scores of every epoch of each to OUT.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import tensorflow as tf

CLASSES = 3
SIZE = 32


def blobs(n: int, seed: int, dim: int = 64):
    """Separable features, as tests/test_head.py makes them."""
    import numpy as np

    from pipeline.models.features import Features

    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    centres = np.random.default_rng(99).normal(0, 1, (CLASSES, dim))
    x = 50 + 20 * (centres[y] + 0.7 * rng.normal(0, 1, (n, dim)))
    return Features(x.astype("float32"), y.astype("int32"),
                    np.array([f"{i}.png" for i in range(n)]),
                    np.array([f"c{i}" for i in range(CLASSES)]))


def colour_images(folder: Path, n: int, seed: int):
    """Images whose class is their dominant colour, with noise: learnable in an epoch."""
    import numpy as np
    from PIL import Image


    rng = np.random.default_rng(seed)
    paths, labels = [], []
    for i in range(n):
        label = i % CLASSES
        pixels = rng.integers(0, 90, (SIZE, SIZE, 3))
        pixels[..., label] += 160
        path = folder / f"{seed}_{i}.png"
        Image.fromarray(pixels.astype("uint8")).save(path)
        paths.append(str(path))
        labels.append(label)
    return np.array(paths), np.array(labels, dtype="int32")


def mirrored(out: Path, work: Path) -> None:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from helpers import params  # tests/ is the script's folder, first on sys.path

    from pipeline.core.params import DistributeParams
    from pipeline.models.head import build_head
    from pipeline.runs.placement import place
    from pipeline.training.finetune import finetune
    from pipeline.training.head_recipes import train_head
    from pipeline.training.inputs import Splits

    work.mkdir(parents=True, exist_ok=True)
    record = work / "weights.json"
    record.write_text(json.dumps({"arch": "resnet50", "source": "random", "seed": 0}))
    head_file = work / "head.keras"
    build_head(blobs(30, 0, 2048).features, CLASSES, 0.0, 0.0).save(head_file)
    splits = Splits(colour_images(work, 24, 1), colour_images(work, 24, 2),
                    [f"c{i}" for i in range(CLASSES)])
    r = "finetune.resnet50"
    # No randomness inside the step (no augmentation, no dropout, BatchNorm frozen): the
    # two strategies then compute the same global-batch gradients, up to summation order.
    loaded = params({"backbone.image_size": SIZE, f"{r}.image_size": None,
                     f"{r}.head_epochs": 0, f"{r}.epochs": 2, f"{r}.patience": 5,
                     f"{r}.unfreeze": 1, f"{r}.schedule": "constant",
                     f"{r}.learning_rate": 0.0001, f"{r}.warmup_epochs": 0,
                     f"{r}.augment.flip": False, f"{r}.augment.crop": False,
                     f"{r}.augment.color_jitter": 0.0, f"{r}.augment.mixup_alpha": 0.0,
                     "head.epochs": 5, "head.patience": 5, "head.learning_rate": 0.01,
                     "head.optimizer": "sgd", "head.dropout": 0.0})
    tf.config.experimental.enable_op_determinism()  # as the stages run
    scores = {}
    for strategy in ("default", "mirrored"):
        placement = place(DistributeParams(strategy=strategy, mixed_precision="none"))
        head = loaded.head.model_copy(update={"batch_size": 40 // placement.replicas})
        keras.utils.set_random_seed(0)
        _, result = train_head(blobs(120, 1), blobs(60, 2), head, None, placement)
        # The same global batch of 8: batch_size is per replica.
        recipe = loaded.finetune["resnet50"].model_copy(
            update={"batch_size": 8 // placement.replicas})
        keras.utils.set_random_seed(0)
        done = finetune(recipe, loaded.backbone, splits, seed=0,
                        live_dir=None, placement=placement, weights_record=record,
                        head_model=head_file)
        scores[strategy] = {
            "replicas": placement.replicas,
            "label": placement.label(),
            "head": result.history,  # every epoch's scores, unrounded
            "finetune": done.result.history,
        }
    out.write_text(json.dumps(scores))


def disagree(out: Path, work: Path) -> None:
    """One worker of two (TF_CONFIG set by the test) fits a tiny model from a backup folder
    of its own: worker 0's says two epochs are done, worker 1 has none."""
    import keras
    import numpy as np

    from pipeline.core.params import DistributeParams
    from pipeline.data.epochs import Epochs
    from pipeline.runs.placement import DistributeError, place
    from pipeline.runs.resume import Resume
    from pipeline.training.fit import fit

    placement = place(DistributeParams(strategy="multi_worker", mixed_precision="none"))
    backup = work / f"backup-{placement.worker}"
    backup.mkdir(parents=True)
    with placement.scope():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, "softmax")])
        model.compile("sgd", "sparse_categorical_crossentropy")
    if placement.worker == 0:  # a checkpoint as BackupAndRestore writes it
        model.optimizer.build(model.trainable_variables)
        model.save_weights(backup / "latest.weights.h5")
        (backup / "training_metadata.json").write_text(json.dumps({"epoch": 2, "batch": 0}))
    x, y = np.zeros((8, 4), "float32"), np.zeros(8, "int32")
    val = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
    try:
        fit(model, Epochs(x, y, 4, seed=0), val, epochs=4, patience=4, monitor="val_loss",
            live_dir=None, train_count=8, resume=Resume(backup))
    except DistributeError as err:
        out.write_text(str(err))
        sys.exit(3)


if __name__ == "__main__":
    mode, out_file, workdir = sys.argv[1:4]
    {"mirrored": mirrored, "disagree": disagree}[mode](Path(out_file), Path(workdir))
