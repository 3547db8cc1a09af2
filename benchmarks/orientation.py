"""What reading the EXIF Orientation in the tf.data input costs: load_image with and without it.

    python benchmarks/orientation.py [--images 256] [--side 512] [--size 128] [--repeats 3]

Writes ``--images`` noise JPEGs of ``--side`` px to a temporary folder, half with an EXIF
block (Orientation 6: a quarter turn), half plain JFIF, and times the project's decode +
resize (``pipeline.data.input.load_image``) with ``exif_orientation`` on and off, through
the same tf.data map, batch 32. Prints images/s (median of ``--repeats``); only ratios
within one run compare.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

import pipeline  # noqa: E402,F401 - TensorFlow's start-up noise filtered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--side", type=int, default=512)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf
    from PIL import Image

    from pipeline.data.input import load_image

    def rate(paths: list[str], orient: bool) -> float:
        ds = (tf.data.Dataset.from_tensor_slices(paths)
              .map(lambda p: load_image(p, args.size, exif_orientation=orient),
                   num_parallel_calls=tf.data.AUTOTUNE).batch(32).prefetch(tf.data.AUTOTUNE))
        for _ in ds:  # warm-up: the trace
            pass
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            for _ in ds:
                pass
            rates.append(len(paths) / (time.perf_counter() - start))
        return statistics.median(rates)

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        plain, tagged = [], []
        for i in range(args.images):
            img = Image.fromarray(rng.integers(0, 256, (args.side, args.side, 3), np.uint8))
            path = Path(tmp) / f"{i}.jpg"
            if i % 2:
                exif = img.getexif()
                exif[0x0112] = 6
                img.save(path, "JPEG", quality=90, exif=exif.tobytes())
                tagged.append(str(path))
            else:
                img.save(path, "JPEG", quality=90)
                plain.append(str(path))
        for name, paths in (("JPEGs without EXIF", plain), ("JPEGs with EXIF Orientation 6",
                                                            tagged)):
            off, on = rate(paths, False), rate(paths, True)
            print(f"{len(paths)} {name} ({args.side} px -> {args.size} px): "
                  f"{off:.0f} img/s without orientation, {on:.0f} img/s with it "
                  f"({(off / on - 1) * 100:+.1f} % time per image)")


if __name__ == "__main__":
    main()
