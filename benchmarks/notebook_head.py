"""The notebook way, for comparison: features and head in one script, nothing cached.

What a practitioner writes without the pipeline: Keras' own directory loader, a
frozen ResNet50 through ``model.predict``, a softmax head on the features, all in
one process, every time a head setting changes. benchmarks/run.py times it against
the pipeline's head-only experiment on the same images, twice over:

* the cold script: the whole run (Python, TensorFlow, the features, the head cell);
* the warm cell: what a person in Jupyter re-runs for a new dropout, with TensorFlow up
  and the features in memory: the head cell alone (build, adapt, compile, fit with early
  stopping, evaluate). The script runs it ``--warm-runs`` more times after the first
  and prints the median of those runs (a re-run traces Keras' functions again, as a new
  model in a notebook does).

The last line is ``notebook: ..., cell S s (first) W s (warm), ...``, which run.py parses.

    python benchmarks/notebook_head.py DATA_DIR [--image-size 128] [--epochs 60]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("data", help="a folder of class folders")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--warm-runs", type=int, default=1,
                        help="head cell runs after the first, timed as the warm cell")
    args = parser.parse_args()
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(args.seed)
    start = time.perf_counter()
    size = (args.image_size, args.image_size)
    train, val = keras.utils.image_dataset_from_directory(
        args.data, image_size=size, batch_size=args.batch_size, seed=args.seed,
        validation_split=0.3, subset="both", label_mode="int", shuffle=True)
    backbone = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                           input_shape=(*size, 3))
    pre = keras.applications.resnet.preprocess_input

    def features(ds: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
        x = backbone.predict(ds.map(lambda i, y: pre(i)), verbose=0)
        y = np.concatenate([y.numpy() for _, y in ds])
        return x, y

    (xt, yt), (xv, yv) = features(train), features(val)
    classes = len(train.class_names)

    def head_cell() -> tuple[float, float]:
        """The notebook's head cell on the features in memory: (seconds, val accuracy)."""
        began = time.perf_counter()
        head = keras.Sequential([
            keras.Input((xt.shape[1],)), keras.layers.Normalization(),
            keras.layers.Dropout(args.dropout),
            keras.layers.Dense(classes, activation="softmax"),
        ])
        head.layers[0].adapt(xt)
        head.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        head.fit(xt, yt, validation_data=(xv, yv), epochs=args.epochs, batch_size=32,
                 verbose=0, callbacks=[keras.callbacks.EarlyStopping(
                     patience=8, restore_best_weights=True)])
        acc = head.evaluate(xv, yv, verbose=0)[1]
        return time.perf_counter() - began, acc

    first, acc = head_cell()
    cold = time.perf_counter() - start
    warm = [head_cell()[0] for _ in range(args.warm_runs)]
    warm_s = f"{statistics.median(warm):.2f}" if warm else "n/a"
    print(f"notebook: {len(yt) + len(yv)} images, features + head in {cold:.1f} s, "
          f"cell {first:.2f} s (first) {warm_s} s (warm), val accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
