"""The notebook way, for comparison: features and head in one script, nothing cached.

What a practitioner writes without the pipeline: Keras' own directory loader, a
frozen ResNet50 through ``model.predict``, a softmax head on the features, all in
one process, every time a head setting changes. benchmarks/run.py times it against
the pipeline's head-only experiment on the same images.

    python benchmarks/notebook_head.py DATA_DIR [--image-size 128] [--epochs 60]
"""

from __future__ import annotations

import argparse
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
    head = keras.Sequential([
        keras.Input((xt.shape[1],)), keras.layers.Normalization(),
        keras.layers.Dropout(args.dropout), keras.layers.Dense(classes, activation="softmax"),
    ])
    head.layers[0].adapt(xt)
    head.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    head.fit(xt, yt, validation_data=(xv, yv), epochs=args.epochs, batch_size=32, verbose=0,
             callbacks=[keras.callbacks.EarlyStopping(patience=8, restore_best_weights=True)])
    acc = head.evaluate(xv, yv, verbose=0)[1]
    print(f"notebook: {len(yt) + len(yv)} images, features + head in "
          f"{time.perf_counter() - start:.1f} s, val accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
