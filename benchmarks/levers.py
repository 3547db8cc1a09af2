"""The levers of the forward and training passes, measured against each other in one process.

    python benchmarks/levers.py [--size 128] [--images 256] [--repeats 3]

Random-weight ResNet50 on random images already in memory (no decoding: the compute
alone). Rows: the forward pass as ``features.extract`` runs it (``tf.function``), the
same with XLA (``jit_compile=True``), ``model.predict`` and ``predict_on_batch``, at
batch 16, 32 and 64, in float32 and bfloat16; then a ResNet50 training step with and
without XLA, with TensorFlow's op determinism off (Keras turns XLA off when it is on,
as the stages have it). Medians of ``--repeats``; only ratios within one run compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parent), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import pipeline  # noqa: E402,F401 - TensorFlow's start-up noise filtered


def timed(fn, count: int, repeats: int) -> float:
    fn()  # warm-up: the trace and compilation
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def backbone_rows(backbone, x, label: str, repeats: int) -> list[tuple[str, float]]:
    import tensorflow as tf

    images, size = len(x), x.shape[1]
    spec = [tf.TensorSpec((None, size, size, 3), tf.float32)]
    rows = []
    for batch in (16, 32, 64):
        batches = [x[i:i + batch] for i in range(0, images, batch)]
        for name, jit in (("tf.function", False), ("tf.function + XLA", True)):
            forward = tf.function(lambda b: backbone(b, training=False),
                                  input_signature=spec, jit_compile=jit)
            rate = timed(lambda f=forward, bs=batches: [f(b).numpy() for b in bs],
                         images, repeats)
            rows.append((f"{label}, batch {batch}, {name}", rate))
        rate = timed(lambda bs=batches: [backbone.predict_on_batch(b) for b in bs],
                     images, repeats)
        rows.append((f"{label}, batch {batch}, predict_on_batch", rate))
        rate = timed(lambda b=batch: backbone.predict(x, batch_size=b, verbose=0),
                     images, repeats)
        rows.append((f"{label}, batch {batch}, model.predict", rate))
    return rows


def forward_rows(size: int, images: int, repeats: int) -> list[tuple[str, float]]:
    import keras
    import numpy as np
    from bench_compute import precision

    from pipeline.models.backbone import build_backbone

    x = np.random.default_rng(0).uniform(0, 255, (images, size, size, 3)).astype("float32")
    rows = []
    for policy in ("none", "mixed_bfloat16"):
        with precision(policy):
            keras.utils.set_random_seed(0)
            backbone = build_backbone("resnet50", size, None)
            label = "float32" if policy == "none" else "bfloat16"
            rows += backbone_rows(backbone, x, label, repeats)
            keras.backend.clear_session()
    return rows


def training_rows(size: int, repeats: int) -> list[tuple[str, float]]:
    import keras
    import numpy as np
    from bench_compute import resnet50_classifier

    batch, steps = 16, 6
    x = np.random.default_rng(0).uniform(0, 255, (batch * steps, size, size, 3)).astype("float32")
    y = np.random.default_rng(1).integers(0, 5, batch * steps)
    rows = []
    for jit in (False, True):
        keras.utils.set_random_seed(0)
        model = resnet50_classifier(size)
        model.compile(optimizer=keras.optimizers.Adam(1e-4),
                      loss="sparse_categorical_crossentropy", jit_compile=jit)
        rate = timed(lambda m=model: m.fit(x, y, batch_size=batch, epochs=1, shuffle=False,
                                           verbose=0), len(x), repeats)
        rows.append((f"ResNet50 training step, batch {batch}, "
                     f"{'XLA' if jit else 'no XLA'}", rate))
        keras.backend.clear_session()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = forward_rows(args.size, args.images, args.repeats)
    rows += training_rows(args.size, args.repeats)
    base = rows[0][1]
    print(f"| lever ({args.size} px, {args.images} images, median of {args.repeats}) "
          "| img/s | x first row |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
