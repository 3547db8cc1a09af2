"""The levers of the forward and training passes, measured against each other in one process.

    python benchmarks/levers.py [--size 128] [--images 256] [--repeats 3]
                                [--batches 16,32,64] [--only forward,training,decode]
                                [--flowers DIR]

Random-weight ResNet50 on random images already in memory (no decoding: the compute
alone). Rows: the forward pass as ``features.Extractor`` runs it (``tf.function``), the
same with XLA (``jit_compile=True``), ``model.predict`` and ``predict_on_batch``, at
batch 16, 32 and 64, in float32 and bfloat16; then a ResNet50 training step with and
without XLA, with TensorFlow's op determinism off (Keras turns XLA off when it is on,
as the stages have it). Then the input side on real JPEGs (``--flowers``): the
project's decode + resize (``data.input.load_image``) alone and decoding without the
resize (what a decode-once cache could at most save per image), then on camera-sized
JPEGs (the photos upscaled to 6.75 MP) a full decode against ``load_image``'s
reduced-scale (DCT) decode.
Thread counts are process-wide: compare them by running this script under
``TF_NUM_INTRAOP_THREADS`` / ``TF_NUM_INTEROP_THREADS``. Medians of ``--repeats``; only
ratios within one run compare.
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


def backbone_rows(backbone, x, label: str, repeats: int,
                  sizes: tuple[int, ...]) -> list[tuple[str, float]]:
    import tensorflow as tf

    images, size = len(x), x.shape[1]
    spec = [tf.TensorSpec((None, size, size, 3), tf.float32)]
    rows = []
    for batch in sizes:
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


def forward_rows(size: int, images: int, repeats: int,
                 batches: tuple[int, ...]) -> list[tuple[str, float]]:
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
            rows += backbone_rows(backbone, x, label, repeats, batches)
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


def decode_rows(flowers: Path, size: int, images: int,
                repeats: int) -> list[tuple[str, float]]:
    import tempfile

    import tensorflow as tf
    from PIL import Image

    from pipeline.data.input import load_image

    def rate(paths: list[str], fn) -> float:
        ds = (tf.data.Dataset.from_tensor_slices(paths)
              .map(fn, num_parallel_calls=tf.data.AUTOTUNE).batch(32)
              .prefetch(tf.data.AUTOTUNE))
        return timed(lambda: [None for _ in ds], len(paths), repeats)

    def full(path):  # what load_image did before reduced-scale decoding
        image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
        return tf.image.resize(image, (size, size), antialias=True)

    small = [str(p) for p in sorted(flowers.rglob("*.jpg"))[:images]]
    if not small:
        raise SystemExit(f"--flowers {flowers}: no .jpg files there")
    with Image.open(small[0]) as img:
        side = "x".join(map(str, img.size))
    rows = [
        (f"{len(small)} JPEGs of {flowers.name} ({side} px): decode + resize to {size} px, "
         "load_image",
         rate(small, lambda p: load_image(p, size))),
        ("the same, decode only", rate(small, lambda p: tf.io.decode_jpeg(tf.io.read_file(p),
                                                                          channels=3))),
    ]
    # Camera-sized photos: the same upscaled to 3000 x 2250 (6.75 MP). Smooth pictures
    # compress small (less entropy decoding than a real photo's), so the DCT-scaling
    # gain here is an upper bound.
    with tempfile.TemporaryDirectory() as tmp:
        big = []
        for i, path in enumerate(small[:48]):
            with Image.open(path) as img:
                img.convert("RGB").resize((3000, 2250), Image.BICUBIC).save(
                    f"{tmp}/{i}.jpg", quality=90)
            big.append(f"{tmp}/{i}.jpg")
        kib = sum(Path(p).stat().st_size for p in big) / len(big) / 1024
        rows += [
            (f"{len(big)} 6.75 MP JPEGs ({kib:.0f} KiB each): full decode + resize to {size} px",
             rate(big, full)),
            (f"{len(big)} 6.75 MP JPEGs: load_image (DCT-scaled decode + resize)",
             rate(big, lambda p: load_image(p, size))),
        ]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batches", default="16,32,64", help="forward batch sizes")
    parser.add_argument("--only", default="forward,training,decode",
                        help="comma-separated groups of rows")
    parser.add_argument("--flowers", type=Path,
                        default=HERE.parent.parent / "shared" / "datasets" / "flowers",
                        help="a folder of JPEGs for the decode rows")
    args = parser.parse_args()
    groups = set(args.only.split(","))
    if groups - {"forward", "training", "decode"} or not groups:
        parser.error(f"--only {args.only}: groups are forward, training, decode")
    rows = []
    if "forward" in groups:
        rows += forward_rows(args.size, args.images, args.repeats,
                             tuple(int(b) for b in args.batches.split(",")))
    if "training" in groups:
        rows += training_rows(args.size, args.repeats)
    if "decode" in groups:
        rows += decode_rows(args.flowers, args.size, 4 * args.images, args.repeats)
    base = rows[0][1]
    print(f"| lever ({args.size} px, {args.images} images, median of {args.repeats}) "
          "| img/s | x first row |")
    print("|---|---:|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} | {rate / base:.2f} |")


if __name__ == "__main__":
    main()
