"""bfloat16 training's accuracy at equal epochs: the project's models, float32 against
``distribute.mixed_precision: mixed_bfloat16``, on real photos.

    python benchmarks/bf16_accuracy.py [--data /work/shared/datasets/flowers] [--seeds 0 1]
        [--wrn-epochs 6] [--resnet-epochs 2] [--per-class 40 20 20] [--resnet-per-class 32 16 20]

A seeded stratified subset of a folder of class folders (exact duplicates, by the hash of
their bytes, dropped: a file whose bytes are in two classes goes, a repeat in one class
keeps its first copy), trained by the pipeline's own code as the stages run it
(``train_scratch`` for ``scratch.wrn``, ``finetune`` for ``finetune.resnet50``; params.yaml's
recipes with fewer epochs; ``place()`` sets the precision, ``seed_everything`` the seed).
The ResNet50 starts from random weights (no ImageNet file offline) with an untrained head
and trains phase 2 only. Per model and precision: the best epoch's val accuracy and loss
(early stopping restores it), the test accuracy and loss of that model, and the training
speed in the same run (the stage's figure, validation and the first epoch's tracing
included; and the steady figure: the training batches of epochs >= 2 alone). The two
precisions alternate, float32 first for the 1st, 3rd ... seed and bfloat16 first for the
others, so that a load rising or falling through the run favours neither.
Prints a Markdown table with the CPU line and the load average.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
for _path in (str(HERE.parent), str(HERE)):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench_compute import IMAGE_SUFFIXES, ROOT_PARAMS, hardware_line  # noqa: E402

import pipeline  # noqa: E402,F401 - TensorFlow's start-up noise filtered

PRECISIONS = ("none", "mixed_bfloat16")


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def unique_images(root: Path) -> dict[str, list[Path]]:
    """Class -> sorted image files, exact duplicates (same bytes) dropped as the module says."""
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise SystemExit(f"{root}: no class folders")
    owners: dict[str, set[str]] = {}
    files: dict[str, list[tuple[Path, str]]] = {c: [] for c in classes}
    for c in classes:
        for path in sorted((root / c).iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                owners.setdefault(digest, set()).add(c)
                files[c].append((path, digest))
    out, dropped = {}, 0
    for c in classes:
        seen, keep = set(), []
        for path, digest in files[c]:
            if len(owners[digest]) > 1 or digest in seen:
                dropped += 1
                continue
            seen.add(digest)
            keep.append(path)
        out[c] = keep
    print(f"[bf16acc] {root}: {sum(map(len, out.values()))} unique images kept, "
          f"{dropped} duplicates dropped", file=sys.stderr, flush=True)
    return out


def subset(images: dict[str, list[Path]], counts: tuple[int, int, int], seed: int):
    """(Splits of train/val, test arrays): ``counts`` = images per class in each split."""
    import numpy as np

    from pipeline.training.inputs import Splits

    rng = np.random.default_rng(seed)
    parts = {"train": ([], []), "val": ([], []), "test": ([], [])}
    for label, c in enumerate(images):
        if len(images[c]) < sum(counts):
            raise SystemExit(f"class {c}: {len(images[c])} images, {sum(counts)} wanted")
        order = rng.permutation(len(images[c]))[:sum(counts)]
        start = 0
        for split, n in zip(parts, counts, strict=True):
            for i in order[start:start + n]:
                parts[split][0].append(str(images[c][i]))
                parts[split][1].append(label)
            start += n
    arrays = {k: (np.array(p), np.array(y, dtype=np.int32)) for k, (p, y) in parts.items()}
    return Splits(arrays["train"], arrays["val"], list(images)), arrays["test"]


class Clock:
    """Times the training part of each epoch (epoch start to validation start): the steady
    training speed, without validation and the first epoch's tracing."""

    def __init__(self):
        self.spans: list[float] = []
        self._start = 0.0

    def callback(self):
        from pipeline.training.recipe import LearningRateLogger

        clock = self

        class Timed(LearningRateLogger):
            def on_epoch_begin(self, epoch, logs=None):  # noqa: ANN001 - Keras' signature
                clock._start = time.perf_counter()

            def on_test_begin(self, logs=None):  # noqa: ANN001
                clock.spans.append(time.perf_counter() - clock._start)

        return Timed


def train_one(model: str, precision: str, seed: int, splits, test, args, params) -> dict:
    import keras
    import numpy as np

    from pipeline.core.io import write_json
    from pipeline.core.process_setup import seed_everything
    from pipeline.data.input import image_dataset
    from pipeline.models.head import build_head
    from pipeline.runs.placement import place
    from pipeline.training import recipe as recipe_module

    keras.backend.clear_session()
    placement = place(params.distribute.model_copy(update={"mixed_precision": precision}))
    seed_everything(seed)
    clock = Clock()
    # fit_recipe passes the recipe's LearningRateLogger to fit: a timed subclass in its place
    # measures the training batches alone, without touching the pipeline's code.
    original = recipe_module.LearningRateLogger
    recipe_module.LearningRateLogger = clock.callback()
    try:
        if model == "wrn":
            from pipeline.training.scratch import train_scratch

            recipe = params.scratch["wrn"].model_copy(update={
                "epochs": args.wrn_epochs, "patience": args.wrn_epochs})
            done = train_scratch("wrn", recipe, splits, seed=seed, live_dir=None,
                                 placement=placement)
        else:
            from pipeline.training.finetune import finetune

            recipe = params.finetune["resnet50"].model_copy(update={
                "epochs": args.resnet_epochs, "patience": args.resnet_epochs,
                "head_epochs": 0})
            with tempfile.TemporaryDirectory(prefix="bf16acc-") as tmp:
                record, head_file = Path(tmp) / "weights.json", Path(tmp) / "head.keras"
                write_json(record, {"arch": params.backbone.arch, "requested": "none",
                                    "source": "random", "seed": seed})
                # An untrained head (the head stage's layers) on 2048 standard features.
                build_head(np.random.default_rng(seed).normal(size=(64, 2048)),
                           len(splits.classes), params.head.dropout, params.head.l2
                           ).save(head_file)
                done = finetune(recipe, params.backbone, splits, seed=seed, live_dir=None,
                                placement=placement, weights_record=record,
                                head_model=head_file)
    finally:
        recipe_module.LearningRateLogger = original
    n = len(splits.classes)
    test_ds = image_dataset(*test, done.image_size, 32,
                            augment=lambda x, y: (x, keras.ops.one_hot(y, n)))
    test_loss, test_acc = done.model.evaluate(test_ds, verbose=0)
    summary = done.result.summary(recipe.monitor)
    count = len(splits.train[0])
    steady = count * len(clock.spans[1:]) / sum(clock.spans[1:]) if len(clock.spans) > 1 \
        else float("nan")
    out = {"val_accuracy": summary["val_accuracy"], "val_loss": summary["val_loss"],
           "test_accuracy": float(test_acc), "test_loss": float(test_loss),
           "best_epoch": summary["best_epoch"],
           "stage_ips": summary["train_images_per_second"], "steady_ips": steady,
           "policy": keras.mixed_precision.global_policy().name}
    print(f"[bf16acc] {model} {precision} seed {seed}: {out} (load {loadavg()})",
          file=sys.stderr, flush=True)
    return out


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def spread(values: list[float]) -> float:
    return max(values) - min(values) if len(values) > 1 else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/datasets/flowers"))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data-seed", type=int, default=0, help="the subset's draw")
    parser.add_argument("--models", nargs="+", default=["wrn", "resnet50"],
                        choices=["wrn", "resnet50"])
    parser.add_argument("--wrn-epochs", type=int, default=6)
    parser.add_argument("--resnet-epochs", type=int, default=2)
    parser.add_argument("--per-class", type=int, nargs=3, default=(40, 20, 20),
                        metavar=("TRAIN", "VAL", "TEST"), help="WRN's images per class")
    parser.add_argument("--resnet-per-class", type=int, nargs=3, default=(32, 16, 20),
                        metavar=("TRAIN", "VAL", "TEST"))
    args = parser.parse_args()
    from pipeline.core.params import load

    params = load(ROOT_PARAMS)
    start = time.perf_counter()
    print(hardware_line())
    print(f"load average at start: {loadavg()}")
    images = unique_images(args.data)
    rows = []
    for model in args.models:
        counts = args.per_class if model == "wrn" else args.resnet_per_class
        splits, test = subset(images, tuple(counts), args.data_seed)
        runs: dict[str, list[dict]] = {p: [] for p in PRECISIONS}
        for i, seed in enumerate(args.seeds):
            # Interleaved, and float32 first on every other seed: a load that rises or
            # falls through the run favours neither precision.
            for precision in PRECISIONS[::-1] if i % 2 else PRECISIONS:
                runs[precision].append(train_one(model, precision, seed, splits, test,
                                                 args, params))
        rows.append((model, counts, runs))
    print(f"\nload average at end: {loadavg()}; {time.perf_counter() - start:.0f} s in all; "
          f"seeds {args.seeds}, subset seed {args.data_seed}\n")
    print("| model | precision | val acc | val loss | test acc | test loss | "
          "best epoch | train img/s: stage; steady |\n|---|---|---|---|---|---|---|---|")
    for model, counts, runs in rows:
        for precision, outs in runs.items():
            def cell(key: str, fmt: str = ".3f", outs=outs) -> str:
                return " / ".join(format(o[key], fmt) for o in outs)

            label = "float32" if precision == "none" else precision
            print(f"| {model} ({'/'.join(map(str, counts))} per class) | {label} | "
                  f"{cell('val_accuracy')} | {cell('val_loss')} | {cell('test_accuracy')} | "
                  f"{cell('test_loss')} | {cell('best_epoch', 'd')} | "
                  f"{cell('stage_ips', '.1f')}; steady {cell('steady_ips', '.1f')} |")
    print("\nper seed (x / y: seed by seed): the change bf16 - f32 in points; spread: float32's "
          "max - min over the seeds\n")
    print("| model | val acc change (points) | test acc change (points) | f32 seed spread "
          "val / test (points) | speed bf16 / f32, stage | steady |\n|---|---|---|---|---|---|")
    for model, _, runs in rows:
        f32, b16 = runs["none"], runs["mixed_bfloat16"]

        def change(key: str, f32=f32, b16=b16) -> list[float]:
            return [100 * (b[key] - f[key]) for f, b in zip(f32, b16, strict=True)]

        def ratio(key: str, f32=f32, b16=b16) -> list[float]:
            return [b[key] / f[key] for f, b in zip(f32, b16, strict=True)]

        fmt = lambda xs, f="+.1f": " / ".join(format(x, f) for x in xs)  # noqa: E731
        print(f"| {model} | {fmt(change('val_accuracy'))} (mean "
              f"{mean(change('val_accuracy')):+.1f}) | {fmt(change('test_accuracy'))} (mean "
              f"{mean(change('test_accuracy')):+.1f}) | "
              f"{100 * spread([o['val_accuracy'] for o in f32]):.1f} / "
              f"{100 * spread([o['test_accuracy'] for o in f32]):.1f} | "
              f"{fmt(ratio('stage_ips'), '.2f')} | {fmt(ratio('steady_ips'), '.2f')} |")


if __name__ == "__main__":
    main()
