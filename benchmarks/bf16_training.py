"""Why bfloat16 training gains little on a CPU: the pieces of a ResNet50 train step, timed.

    python benchmarks/bf16_training.py [--size 128] [--batch 16] [--steps 6] [--repeats 2]

Random-weight ResNet50 (the project's backbone, all trainable, + a softmax layer) on random
images in memory, ``model.fit`` as the stages run it (op determinism on, so no XLA), in
float32 and under ``mixed_bfloat16``; then the parts: the forward pass alone (training=True),
forward + gradients without the optimizer, the Adam update alone, XLA (determinism off);
and the ops of one bfloat16 gradient step by type (casts, BatchNorm dtype). Prints a
Markdown table with the CPU line; medians of ``--repeats``; only ratios in one run compare.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parent), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench_compute import hardware_line, matmul_gflops, precision, resnet50_classifier  # noqa: E402

import pipeline  # noqa: E402,F401 - TensorFlow's start-up noise filtered


def rate(fn, images: int, repeats: int, label: str = "") -> float:
    fn()  # warm-up: trace, oneDNN primitives
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(images / (time.perf_counter() - start))
    print(f"[bf16] {label}: {statistics.median(rates):.1f} img/s", file=sys.stderr, flush=True)
    return statistics.median(rates)


def measure(policy: str, args, xla: bool = False) -> dict[str, float]:
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n = args.batch * args.steps
    x = rng.uniform(0, 255, (n, args.size, args.size, 3)).astype("float32")
    y = rng.integers(0, 5, n)
    out = {}
    with precision(policy):
        model = resnet50_classifier(args.size)
        optimizer = keras.optimizers.Adam(1e-4)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                      jit_compile=xla)
        out["fit"] = rate(lambda: model.fit(x, y, batch_size=args.batch, epochs=1,
                                            shuffle=False, verbose=0), n, args.repeats,
                         f"{policy} fit xla={xla}")
        if xla:
            return out
        batches = [(tf.constant(x[i:i + args.batch]), tf.constant(y[i:i + args.batch]))
                   for i in range(0, n, args.batch)]
        loss_fn = keras.losses.SparseCategoricalCrossentropy()

        @tf.function
        def forward(images):
            return model(images, training=True)

        @tf.function
        def grads(images, labels):
            with tf.GradientTape() as tape:
                loss = loss_fn(labels, model(images, training=True))
            return tape.gradient(loss, model.trainable_variables)

        out["forward"] = rate(lambda: [forward(b[0]).numpy() for b in batches], n,
                              args.repeats, f"{policy} forward")
        out["forward+backward"] = rate(
            lambda: [grads(*b)[0].numpy() for b in batches], n, args.repeats,
            f"{policy} forward+backward")
        g = grads(*batches[0])

        @tf.function
        def update():
            optimizer.apply_gradients(zip(g, model.trainable_variables, strict=True))

        update()
        out["adam update (per image of a batch)"] = rate(
            lambda: [update() for _ in batches] and model.trainable_variables[0].numpy(), n,
            args.repeats, f"{policy} adam update")
        graph = grads.get_concrete_function(*batches[0]).graph
        ops = collections.Counter(op.type for op in graph.get_operations())
        bn = collections.Counter(op.get_attr("T").name for op in graph.get_operations()
                                 if op.type.startswith("FusedBatchNorm"))
        out["ops"] = (f"{ops['Cast']} Cast, {ops['Conv2D']} Conv2D, "
                      f"{ops['Conv2DBackpropFilter']} Conv2DBackpropFilter; "
                      f"FusedBatchNorm inputs {dict(bn)}")
    keras.backend.clear_session()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-xla", action="store_true", help="skip the XLA rows")
    args = parser.parse_args()
    import tensorflow as tf

    print(hardware_line())
    mm = {d: statistics.median(matmul_gflops(d, args.repeats)) for d in ("float32", "bfloat16")}
    print(f"\nmatmul 2048^3: float32 {mm['float32']:.0f} GFLOP/s, bfloat16 "
          f"{mm['bfloat16']:.0f} ({mm['bfloat16'] / mm['float32']:.2f}x)\n")
    tf.config.experimental.enable_op_determinism()  # as the stages run
    f32, bf16 = measure("none", args), measure("mixed_bfloat16", args)
    print(f"| ResNet50 {args.size} px, batch {args.batch} (img/s) | float32 | bfloat16 | "
          "bf16 / f32 |\n|---|---:|---:|---:|")
    for key in ("fit", "forward", "forward+backward", "adam update (per image of a batch)"):
        print(f"| {key} | {f32[key]:.1f} | {bf16[key]:.1f} | {bf16[key] / f32[key]:.2f} |",
              flush=True)
    from tensorflow.python.framework import config as tf_config  # no public switch-off

    tf_config.disable_op_determinism()  # XLA needs it off
    xla32, xla16 = ({"fit": float("nan")},) * 2 if args.no_xla else (
        measure("none", args, True), measure("mixed_bfloat16", args, True))
    print(f"| fit, XLA (determinism off) | {xla32['fit']:.1f} | {xla16['fit']:.1f} | "
          f"{xla16['fit'] / xla32['fit']:.2f} |")
    print(f"\nbfloat16 gradient step's graph: {bf16['ops']}")
    print(f"float32 gradient step's graph: {f32['ops']}")


if __name__ == "__main__":
    main()
