"""TensorFlow's "Image classification" tutorial CNN, on a pipeline project's split: the
baseline of benchmarks/run.py's time-to-accuracy row.

    python benchmarks/tutorial_cnn.py PROJECT [--image-size 128] [--epochs 15] [--seed 42]

Written from the tutorial's description (tensorflow.org/tutorials/images/classification,
the version with augmentation): Rescaling 1/255; three 3x3 "same" ReLU convolutions of
16, 32 and 64 filters, each followed by 2x2 max-pooling; Dropout 0.2; Flatten; Dense 128
ReLU; Dense logits; RandomFlip("horizontal"), RandomRotation(0.1) and RandomZoom(0.1) in
front; Adam at Keras' default rate, sparse cross-entropy from logits, batch 32, 15 epochs,
validation after each. Its input the tutorial's way too: the file list shuffled once,
decode, resize (bilinear), then ``.cache().shuffle(1000).prefetch()``. Plain Keras and
tf.data, nothing of the pipeline's code, so that what is timed is what a user of the
tutorial runs.

The split is the project's (``PROJECT/data/manifest.csv``, paths relative to the image
folder ``PROJECT/data/source.json`` records): trained on train, validated on val, scored
on test, the images every model of the pipeline is scored on. Prints one JSON line: test
accuracy, test images, the seconds of the fit and of the whole process so far. Timing the
whole process (interpreter and TensorFlow start, data, training, the test score) is the
caller's (benchmarks/run.py).
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import time
from pathlib import Path


def split(project: Path, seed: int) -> dict[str, tuple[list[str], list[int]]]:
    """split -> (absolute image paths, integer labels), classes numbered in sorted order."""
    root = Path(json.loads((project / "data" / "source.json").read_text())["root"])
    with (project / "data" / "manifest.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    classes = sorted({r["label"] for r in rows})
    # In the manifest's order (by class), then shuffled once as Keras' directory loader
    # shuffles its file list: .shuffle(1000) over a list sorted by class would draw
    # batches of mostly one class.
    random.Random(seed).shuffle(rows)
    out: dict[str, tuple[list[str], list[int]]] = {}
    for r in rows:
        paths, labels = out.setdefault(r["split"], ([], []))
        paths.append(str(root / r["path"]))
        labels.append(classes.index(r["label"]))
    return out


def main() -> None:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("project", type=Path, help="a pipeline project after `dvc repro prepare`")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(args.seed)
    data = split(args.project, args.seed)
    size = args.image_size
    classes = len(set(data["train"][1]))

    def dataset(name: str, shuffle: bool) -> tf.data.Dataset:
        def load(path, label):
            image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                                       expand_animations=False)
            return tf.image.resize(image, (size, size)), label

        ds = tf.data.Dataset.from_tensor_slices(data[name]).map(
            load, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if shuffle:
            ds = ds.shuffle(1000, seed=args.seed)
        return ds.batch(32).prefetch(tf.data.AUTOTUNE)

    model = keras.Sequential([
        keras.Input((size, size, 3)),
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.1),
        layers.Rescaling(1.0 / 255),
        layers.Conv2D(16, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(32, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Dropout(0.2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dense(classes, name="outputs"),
    ])
    model.compile(optimizer="adam",
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    fit_start = time.perf_counter()
    model.fit(dataset("train", True), validation_data=dataset("val", False),
              epochs=args.epochs, verbose=2)
    fit_seconds = time.perf_counter() - fit_start
    _, accuracy = model.evaluate(dataset("test", False), verbose=0)
    print(json.dumps({"test_accuracy": round(float(accuracy), 4),
                      "test_images": len(data["test"][1]), "epochs": args.epochs,
                      "fit_seconds": round(fit_seconds, 1),
                      "seconds_after_imports": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
