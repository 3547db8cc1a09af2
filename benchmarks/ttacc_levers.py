"""The levers of a from-scratch recipe's time to accuracy, each measured at a fixed number of
epochs on a pipeline project's own split: accuracy, and the cost of a training step.

    python benchmarks/ttacc_levers.py PROJECT --model resnet9 --width 16 --size 64 \
        --epochs 12 [--batch 64] [--optimizer adam] [--lr 0.004] [--schedule onecycle]
        [--warmup 2] [--smoothing 0.1] [--precision mixed_bfloat16] [--jit] [--no-crop]
    python benchmarks/ttacc_levers.py PROJECT --model wrn --depth 16 --width 2 --size 64 ...
    python benchmarks/ttacc_levers.py PROJECT --compare "width=16,size=64" \
        "width=16,size=64,precision=mixed_bfloat16" "model=wrn,width=2,batch=32" [--rounds 5]

PROJECT is a pipeline project after `dvc repro prepare` (its data/manifest.csv and
data/source.json): training on its train split, the scores on its val and test splits, the
images every model of the pipeline is scored on. The images are decoded once by the
pipeline's own ``load_image`` at ``--size`` and kept in memory (the cost of the decode
is not what this compares), then trained by the pipeline's augmentation
(``training.augment``: flip, random resized crop 0.6-1), loss (label-smoothed
cross-entropy) and optimizers, with the schedule given: ``onecycle`` (linear warm-up
to the rate, then linear to 0: Page's) or ``cosine`` (linear warm-up, then cosine to 0).

``--compare`` measures the cost of a training step alone, for several settings (each a
comma-separated list of this command's options, the others as given) in one process:
every model is built and traced first, then timed in ``--rounds`` rounds of 10 steps,
the settings taking turns, so that all of them see the same load on a shared machine;
one JSON line each, the median round. Otherwise one run prints one JSON line: the
setting, the median seconds of a training step (steps after the
first three of the run, which hold the trace), images/s, the median epoch's seconds
(validation included), validation accuracy per epoch, and the test accuracy of the last
epoch's weights alone and averaged with the horizontally flipped image (test-time flip
averaging), with the load average before and after. Compare settings by their accuracy
at the same epochs and by their step cost measured under the same load; a figure from a
loaded machine is a ratio's, not an absolute's.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parent), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import pipeline  # noqa: E402,F401 - TensorFlow's start-up noise filtered


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def decoded(project: Path, size: int):
    """split -> (uint8 images at ``size`` px, int labels), decoded once and cached beside the
    project (``.cache/ttacc/``)."""
    import numpy as np
    import tensorflow as tf

    from pipeline.data.input import load_image, split_arrays
    from pipeline.data.manifest import classes, read

    cache = project / ".cache" / "ttacc" / f"images-{size}.npz"
    if cache.is_file():
        with np.load(cache) as z:
            return {s: (z[f"{s}_x"], z[f"{s}_y"]) for s in ("train", "val", "test")}
    manifest = read(project / "data" / "manifest.csv")
    root = json.loads((project / "data" / "source.json").read_text())["root"]
    names = classes(manifest)
    out = {}
    for split in ("train", "val", "test"):
        paths, labels = split_arrays(manifest, root, split, names)
        ds = tf.data.Dataset.from_tensor_slices(paths).map(
            lambda p: tf.cast(tf.round(load_image(p, size)), tf.uint8),
            num_parallel_calls=tf.data.AUTOTUNE).batch(256)
        out[split] = (np.concatenate([b.numpy() for b in ds]), labels)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **{f"{s}_{k}": v for s, (x, y) in out.items() for k, v in
                       (("x", x), ("y", y))})
    return out


def build(args, classes: int):
    import keras

    if args.model == "resnet9":
        from pipeline.models.resnet9 import ResNet9

        side = None if args.progressive else args.size  # progressive: any size
        net = ResNet9(args.width, args.stem_stride, input_shape=(side, side, 3),
                      pooling=args.pooling)
    else:
        from pipeline.models.wide_resnet import WideResNet

        net = WideResNet(args.depth, args.width, args.dropout, input_shape=(args.size,
                         args.size, 3), pooling="avg")
    side = None if args.progressive else args.size
    inputs = keras.Input((side, side, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    outputs = keras.layers.Dense(classes, activation="softmax", dtype="float32")(net(x))
    return keras.Model(inputs, outputs)


def schedule(args, steps: int):
    import keras
    from keras import ops

    total, warm = args.epochs * steps, args.warmup * steps
    peak = args.lr

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            s = ops.cast(step, "float32")
            up = peak * s / max(warm, 1)
            frac = ops.clip((s - warm) / max(total - warm, 1), 0.0, 1.0)
            if args.schedule == "onecycle":
                down = peak * (1.0 - frac)
            else:
                down = peak * 0.5 * (1.0 + ops.cos(3.141592653589793 * frac))
            return ops.where(s < warm, up, down)

    return Schedule()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("project", type=Path)
    parser.add_argument("--model", choices=("resnet9", "wrn"), default="resnet9")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--depth", type=int, default=16)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--stem-stride", type=int, default=1)
    parser.add_argument("--pooling", default="max")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--lr", type=float, default=0.004)
    parser.add_argument("--weight-decay", type=float, default=0.0001)
    parser.add_argument("--schedule", choices=("onecycle", "cosine"), default="onecycle")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoothing", type=float, default=0.1)
    parser.add_argument("--precision", default="none")
    parser.add_argument("--jit", action="store_true", help="XLA (op determinism off)")
    parser.add_argument("--no-crop", action="store_true")
    parser.add_argument("--progressive", metavar="FRACTION:PX",
                        help="progressive resizing: the first FRACTION of the epochs at PX, "
                             "the rest at --size (validation at --size)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--compare", nargs="+", metavar="SETTING",
                        help="time training steps of these settings, taking turns")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if args.compare:
        return compare(parser, args)
    before = loadavg()

    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline.core.params import AugmentParams
    from pipeline.core.process_setup import seed_everything
    from pipeline.training.augment import make_augment
    from pipeline.training.optimizers import make_optimizer

    keras.mixed_precision.set_global_policy(
        "float32" if args.precision == "none" else args.precision)
    if args.jit:
        keras.utils.set_random_seed(args.seed)
    else:
        seed_everything(args.seed)
    data = decoded(args.project, args.size)
    (tx, ty), (vx, vy), (sx, sy) = data["train"], data["val"], data["test"]
    n = int(ty.max()) + 1
    augment = make_augment(AugmentParams(flip=True, crop=not args.no_crop, crop_min_scale=0.6,
                                         color_jitter=0.0, mixup_alpha=0.0), n)
    steps = -(-len(ty) // args.batch)

    def train_ds(side: int = args.size):
        ds = tf.data.Dataset.from_tensor_slices((tx, ty)).shuffle(
            len(ty), seed=args.seed, reshuffle_each_iteration=True).batch(args.batch)
        ds = ds.enumerate().map(
            lambda b, xy: augment(tf.image.resize(tf.cast(xy[0], tf.float32), (side, side),
                                                  antialias=True),
                                  tf.one_hot(xy[1], n),
                                  tf.stack([tf.constant(args.seed, tf.int64), b])),
            num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def plain(x, y):
        return tf.data.Dataset.from_tensor_slices(
            (x.astype("float32"), tf.one_hot(y, n))).batch(128)

    model = build(args, n)
    model.compile(optimizer=make_optimizer(args.optimizer, schedule(args, steps), 0.9,
                                           args.weight_decay),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=args.smoothing),
                  metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")],
                  jit_compile=args.jit)

    class Times(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.ends, self.epochs, self.val = [], [], []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            self.epochs.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            self.val.append(round(float(logs.get("val_accuracy", 0)), 4))

    times = Times()
    start = time.perf_counter()
    first = 0
    if args.progressive:
        fraction, small = args.progressive.split(":")
        first = round(float(fraction) * args.epochs)
        model.fit(train_ds(int(small)), validation_data=plain(vx, vy), epochs=first,
                  verbose=2, callbacks=[times])
    model.fit(train_ds(), validation_data=plain(vx, vy), initial_epoch=first,
              epochs=args.epochs, verbose=2, callbacks=[times])
    fit_seconds = time.perf_counter() - start
    gaps = [b - a for a, b in zip(times.ends[3:steps], times.ends[4:steps], strict=False)]
    step = statistics.median(gaps)
    walls = [b - a for a, b in zip(times.epochs[1:], times.epochs[2:], strict=False)]
    proba = model.predict(plain(sx, sy), verbose=0)
    flipped = model.predict(plain(sx[:, :, ::-1], sy), verbose=0)
    acc = float(np.mean(proba.argmax(1) == sy))
    acc_tta = float(np.mean((proba + flipped).argmax(1) == sy))
    print(json.dumps({**vars(args), "project": str(args.project),
                      "params": model.count_params(), "step_seconds": round(step, 4),
                      "images_per_second": round(args.batch / step, 1),
                      "epoch_seconds": round(statistics.median(walls), 1) if walls else None,
                      "fit_seconds": round(fit_seconds, 1), "val_accuracy": times.val,
                      "test_accuracy": round(acc, 4), "test_accuracy_flip_tta": round(acc_tta, 4),
                      "test_images": len(sy), "load_before": before, "load_after": loadavg()}))


def compare(parser: argparse.ArgumentParser, base: argparse.Namespace) -> None:
    """--compare: the step cost of each setting, measured in turns (see the module)."""
    import keras
    import numpy as np
    import tensorflow as tf

    from pipeline.training.optimizers import make_optimizer

    before = loadavg()
    data = decoded(base.project, max(64, base.size))
    settings, runs = [], []
    for text in base.compare:
        argv = [str(base.project)] + [a for kv in text.split(",") for a in
                                      (f"--{kv.split('=')[0]}", *kv.split("=")[1:])]
        args = parser.parse_args(argv)
        keras.mixed_precision.set_global_policy(
            "float32" if args.precision == "none" else args.precision)
        keras.utils.set_random_seed(args.seed)
        model = build(args, 5)
        model.compile(optimizer=make_optimizer(args.optimizer, args.lr, 0.9, args.weight_decay),
                      loss=keras.losses.CategoricalCrossentropy(label_smoothing=0.1),
                      jit_compile=args.jit)
        x = tf.image.resize(data["train"][0][: args.batch].astype("float32"),
                            (args.size, args.size))
        y = tf.one_hot(data["train"][1][: args.batch], 5)
        for _ in range(3):  # the trace, and the first steps after it
            model.train_on_batch(x, y)
        settings.append(text)
        runs.append((model, x, y, args, []))
    keras.mixed_precision.set_global_policy("float32")
    for _ in range(base.rounds):
        for model, x, y, _, rounds in runs:
            start = time.perf_counter()
            for _ in range(10):
                model.train_on_batch(x, y)
            rounds.append((time.perf_counter() - start) / 10)
    for text, (model, _, _, args, rounds) in zip(settings, runs, strict=True):
        step = float(np.median(rounds))
        print(json.dumps({"setting": text, "batch": args.batch, "size": args.size,
                          "params": model.count_params(), "step_seconds": round(step, 4),
                          "images_per_second": round(args.batch / step, 1),
                          "load_before": before, "load_after": loadavg()}))


if __name__ == "__main__":
    main()
