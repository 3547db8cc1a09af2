"""Parameter counts and CPU throughput of the candidate architectures.

Which backbone a 2-core CPU can afford to fine-tune decides the pipeline's defaults, so
this measures it instead of guessing: images per second for a training step
(forward + backward + SGD update) and for inference, on random data.

    python benchmarks/models.py                       # the default set below
    python benchmarks/models.py wrn-28-10@32 bit-r50x1@128 --steps 5 --batch 32

An architecture is NAME@SIZE with NAME one of wrn-D-K, bit-rDEPTHxW (depth 50, 101 or
152) or a keras.applications function name in lower case (resnet50, resnet50v2, ...).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # allow `python benchmarks/models.py` without installing
    sys.path.insert(0, str(ROOT))

DEFAULTS = ("wrn-16-4@64", "wrn-16-2@64", "wrn-10-2@64", "bit-r50x3@64", "resnet50@96")
BIT_BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
APPLICATIONS = {"resnet50": "ResNet50", "resnet101": "ResNet101", "resnet50v2": "ResNet50V2"}


@dataclass
class Result:
    arch: str
    size: int
    params: int
    train_img_s: float
    infer_img_s: float
    build_s: float


def build(name: str, size: int, classes: int):
    """Build an architecture by name with a `classes`-way top at size x size x 3."""
    import keras

    shape = (size, size, 3)
    if m := re.fullmatch(r"wrn-(\d+)-(\d+)", name):
        from pipeline.models.wide_resnet import WideResNet

        depth, width = int(m[1]), int(m[2])
        return WideResNet(depth, width, include_top=True, input_shape=shape, classes=classes)
    if (m := re.fullmatch(r"bit-r(\d+)x(\d+)", name)) and int(m[1]) in BIT_BLOCKS:
        from pipeline.models.bit import BiTResNet

        blocks = BIT_BLOCKS[int(m[1])]
        return BiTResNet(int(m[2]), blocks, include_top=True, input_shape=shape, classes=classes)
    if name in APPLICATIONS:
        factory = getattr(keras.applications, APPLICATIONS[name])
        return factory(weights=None, include_top=True, input_shape=shape, classes=classes)
    raise ValueError(f"unknown architecture {name!r}; see --help for the accepted names")


def parse_spec(spec: str) -> tuple[str, int]:
    name, _, size = spec.lower().partition("@")
    if not size.isdigit():
        raise argparse.ArgumentTypeError(f"expected NAME@SIZE, e.g. wrn-16-4@64; got {spec!r}")
    return name, int(size)


def _rate(fn, batch: int, steps: int) -> float:
    fn()  # warm-up: tracing/compilation is not throughput
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return batch * steps / (time.perf_counter() - start)


def measure(name: str, size: int, batch: int, steps: int, classes: int, jit: str) -> Result:
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    model = build(name, size, classes)
    build_s = time.perf_counter() - start
    jit_compile = {"auto": "auto", "on": True, "off": False}[jit]
    model.compile(
        optimizer=keras.optimizers.SGD(0.003, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        jit_compile=jit_compile,
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, size=batch)
    train = _rate(lambda: model.train_on_batch(x, y), batch, steps)
    infer = _rate(lambda: model.predict_on_batch(x), batch, steps)
    result = Result(name, size, model.count_params(), train, infer, build_s)
    keras.backend.clear_session()  # drop the graph state; the model itself dies with this frame
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archs", nargs="*", type=parse_spec, help=f"default: {' '.join(DEFAULTS)}")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--jit", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    archs = args.archs or [parse_spec(s) for s in DEFAULTS]

    import tensorflow as tf  # only for the thread count in the header

    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    print(f"batch {args.batch}, {args.steps} timed steps, jit {args.jit}, TF threads {threads}")
    header = f"{'architecture':<14}{'px':>5}{'params':>14}{'train img/s':>13}{'infer img/s':>13}"
    print(header + f"{'build s':>9}", flush=True)
    results = []
    for name, size in archs:
        r = measure(name, size, args.batch, args.steps, args.classes, args.jit)
        results.append(r)
        print(
            f"{r.arch:<14}{r.size:>5}{r.params:>14,}{r.train_img_s:>13.1f}"
            f"{r.infer_img_s:>13.1f}{r.build_s:>9.1f}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
