"""How fast the pipeline is on this machine, and against what: one Markdown table.

    python benchmarks/run.py                  # the full run (the better part of an hour on 2 cores)
    python benchmarks/run.py --quick          # under 5 minutes: fewer images, one run each
    python benchmarks/run.py --repeats 5 --output benchmarks/results.md
    python benchmarks/run.py --rows 6       # some rows only (and row 1, the reference)

Only public tools: time.perf_counter, subprocess, os.wait4's rusage, NumPy, TensorFlow,
Keras and dvc's command line. Each figure is the median over ``--repeats`` runs (3; 1
with --quick), and the table's ``runs`` column says how many went into it.

What each row means:

1. **matmul**: GFLOP/s of a 2048 x 2048 ``tf.linalg.matmul`` in a ``tf.function``
   (2 n^3 FLOPs a call, after a warm-up), in float32 and in bfloat16: what this CPU
   and TensorFlow's kernels can do at best, the reference for the fractions below.
2. **features, project path**: images/s of ``pipeline.models.features.Extractor`` over
   ``pipeline.data.input.image_dataset`` (decode + resize, batch 32) with
   ``build_backbone("resnet50", size, None)`` (random weights) on real flower photos,
   at 128 and 224 px. Each pass includes its one graph trace, as a stage run does.
   Effective GFLOP/s = images/s x 8.2 GFLOP x (size/224)^2, and that as a fraction of
   the float32 matmul rate.
   The same path under ``distribute.mixed_precision: mixed_bfloat16`` gives a bfloat16
   row (as a fraction of the bfloat16 matmul rate, and x float32), and the same path on
   the features stage's default runtime (``inference: auto``: OpenVINO, bfloat16 on a CPU
   with native bf16) against the float32 row of the same run. The **head accuracy** row
   trains params.yaml's head on TensorFlow float32 features and on ``inference: auto``
   ones of the same photos at 128 px (all flowers; --quick: the 100), and reports the
   change and the least per-image cosine between the two feature sets.
3. **features, plain Keras**: the same files through
   ``keras.utils.image_dataset_from_directory`` + ``resnet.preprocess_input`` +
   ``ResNet50(include_top=False, weights=None, pooling="avg").predict`` (its predict
   function dropped before each pass, so it traces once too); ratio = project / plain
   (above 1: the project's path is faster).
4. **head loop**: wall-clock seconds of a head-only experiment,
   ``dvc exp run evaluate_head -S head.dropout=X`` (the always-changed source and weights
   checks, train_head, evaluate_head on cached features), in a temporary copy of the
   project reading the flowers folder (duplicates dropped, random weights), against the
   notebook way, ``benchmarks/notebook_head.py``, twice over: the cold script (features
   and head again, every time) and the warm cell (the head cell alone re-run, TensorFlow
   up and the features in memory, as in Jupyter); one new dropout per run. Ratios:
   pipeline / warm cell (issue 32's target: at most 2) and cold script / pipeline (above
   1: the pipeline is faster). A second row splits the pipeline's time: each stage
   command it ran (from DVC's "> command" line to its "Updating lock file" line) and DVC's
   own (the rest: start, stash, checks, lock writes, the experiment's commit), with the
   load average. The copy's first ``dvc repro evaluate_head`` (features once) is not timed.
5. **no-op repro**: seconds of ``dvc repro`` with nothing changed on the sample data
   (only the always-changed source, weights and scratch_weights checks run), after one
   untimed ``dvc repro``; in the full run also ``dvc repro validate`` on a 10,000-image sample.
6. **peak memory** (full run only): the peak resident set (ru_maxrss from wait4, in a
   small launcher process: a child forked from this one would inherit its size) of
   ``python stages/{prepare,features,train_head}.py`` at 1,000 and 10,000 sample
   images, and the ratio 10k / 1k.
7. **training speed**: training images/s of ``model.fit`` (Adam, random data, after a
   warm-up fit) for the project's ResNet50 backbone + a softmax layer, all trainable,
   at 128 px, and for WRN-16-2 at 64 px; effective GFLOP/s = 3 x forward FLOPs x
   images/s (ResNet50: 8.2 GFLOP x (size/224)^2; WRN: counted from its layers), and
   that as a fraction of the float32 matmul rate.
8. **runtimes**: images/s of ResNet50's forward pass (random weights, batch 32, random
   images in memory: the compute alone) on each inference runtime and precision:
   TensorFlow float32, TensorFlow mixed_bfloat16, OpenVINO float32, OpenVINO bfloat16,
   at 128 and 224 px; the ratio to TensorFlow float32 and the fraction of the matmul rate
   of the same precision (row 1).
9. **export**: wall-clock seconds of ``python stages/export.py`` (the recommended model
   in every format of ``export.formats``, each checked on every test image) in a copy
   of the project on the sample data, and one row per format from what it wrote
   (``reports/export.json``, and its run facts ``reports/runs/export.json``): top-1
   agreement with the Keras model and the largest |probability difference| on every
   test image, single-image latency p50/p95 and batch throughput, file size, status.
   The copy's first ``dvc repro export``
   (training included; --quick: the tiny profile) is not timed.
10. **first full repro**: wall-clock seconds of the first ``dvc repro`` (every stage) in a
   fresh copy reading the flowers folder (duplicates dropped, random weights), once with
   the forward passes on TensorFlow float32 (``inference.runtime: tensorflow``, the path
   before issue 21) and once on ``inference: auto``; each stage's seconds are read from
   DVC's "Running stage" lines, and the notes name the slowest. ``--repro-epochs N`` caps
   the training entries' epochs (--quick: 1, on the head loop's subset). One run each.
11. **time to accuracy**: in a copy reading the flowers folder (duplicates dropped; its
   manifest, untimed), the wall-clock seconds T of the whole process of TensorFlow's
   tutorial CNN (``benchmarks/tutorial_cnn.py``: 15 epochs at 128 px, its test accuracy
   on the manifest's test split), then ``python stages/scratch.py resnet9`` with
   ``scratch.resnet9.budget_seconds`` = T, 2T and 4T (``--budgets``): each stage's
   whole-process wall time (and its ratio to the budget), the epochs its budget planned
   and why it stopped (its card), and the test accuracy ``stages/evaluate.py`` gives it
   (untimed), with 95 % Wilson intervals on the same test images. One run each; --quick:
   on the head loop's subset.

``--quick`` measures less: 100 photos in rows 2-3, the head loop at 128 px only and on
the first 30 photos of each class (copied to a temporary folder), row 5 on a tiny
profile and without the 10,000-image figure, no row 6, 2 training steps per run.

The temporary copies that rows 4-6 time are built first, untimed, two at a time;
every timed measurement then runs alone, one after another. A row whose measurement
fails says ``error: ...`` and the run goes on.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (str(ROOT), str(HERE)):  # `python benchmarks/run.py` without installing
    if _path not in sys.path:
        sys.path.insert(0, _path)

from bench_compute import (  # noqa: E402
    hardware_line,
    head_accuracy,
    image_files,
    matmul_gflops,
    plain_features,
    project_features,
    resnet50_classifier,
    resnet50_gflop,
    runtime_rates,
    subset_folder,
    train_rates,
    wrn_16_2,
)
from bench_dvc import (  # noqa: E402
    MEMORY_STAGES,
    RUNTIMES,
    budget_run,
    export_run,
    flowers_setup,
    head_setup,
    head_times,
    images_kept,
    noop_times,
    sample_setup,
    stage_peaks,
    stage_times,
    ttacc_setup,
    tutorial_run,
)

import pipeline  # noqa: E402,F401 - before TensorFlow is imported: its start-up noise filtered

FLOWERS = ROOT.parent / "shared" / "datasets" / "flowers"
SKIPPED = "skipped (full run only)"


@dataclass
class Row:
    number: int  # the row of the module docstring
    figure: str
    setting: str
    result: str
    runs: str = "-"
    note: str = ""


@dataclass
class Plan:
    """What one run measures: the full run, or the --quick one."""

    quick: bool
    repeats: int
    feature_images: int  # per flowers class (5 classes)
    head_sizes: tuple[int, ...]
    head_subset: int | None  # flowers per class in the head loop; None: all of them
    train_steps: int
    noop_tiny: bool  # the no-op repro on the tiny profile, else on the repository's params
    sample_sizes: tuple[int, int] | None  # sample.images_per_class of rows 5 (validate), 6
    repro_epochs: int | None = None  # row 10's cap on training epochs; None: params.yaml's
    budgets: tuple[int, ...] = (1, 2, 4)  # row 11's budgets, in multiples of the tutorial's T

    @classmethod
    def of(cls, args: argparse.Namespace) -> Plan:
        if args.quick:
            return cls(True, args.repeats or 1, 20, args.head_sizes or (128,), 30, 2, True,
                       None, args.repro_epochs or 1, args.budgets)
        return cls(False, args.repeats or 3, 192, args.head_sizes or (128, 224), None, 10,
                   False, (200, 2000), args.repro_epochs, args.budgets)


@dataclass
class Bench:
    plan: Plan
    flowers: Path
    work: Path
    setups: dict[str, Future] = field(default_factory=dict)
    matmul_fp32: float | None = None
    matmul_bf16: float | None = None
    project_rate: dict[int, float] = field(default_factory=dict)
    rows: set[int] | None = None  # --rows; None: all

    def wanted(self, numbers: set[int]) -> bool:
        """Whether any of these rows is measured (row 1, the reference, always is)."""
        return self.rows is None or 1 in numbers or bool(self.rows & numbers)

    def setup(self, name: str):
        """The result of an untimed set-up step (its exception, if it failed)."""
        return self.setups[name].result()


# --- formatting --------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def fraction(gflops: float, bench: Bench) -> str:
    if not bench.matmul_fp32:
        return "fraction n/a (no float32 matmul rate)"
    return f"{gflops / bench.matmul_fp32:.2f} of the float32 matmul rate"


def one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def attempt(number: int, figure: str, setting: str,
            measure: Callable[[], tuple[str, int, str]]) -> Row:
    """One row: ``measure()`` gives (result, runs, note); a failure becomes ``error: ...``."""
    print(f"[bench] {figure}: {setting}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    try:
        result, runs, note = measure()
    except Exception as err:
        print(f"[bench]   error: {one_line(err, 2000)}", file=sys.stderr, flush=True)
        return Row(number, figure, setting, f"error: {one_line(err)}")
    print(f"[bench]   {result} ({time.perf_counter() - start:.0f} s)", file=sys.stderr,
          flush=True)
    return Row(number, figure, setting, result, str(runs), note)


def cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(rows: list[Row]) -> str:
    lines = ["| # | figure | setting | median | runs | notes |",
             "|---|---|---|---:|---:|---|"]
    for row in rows:
        cells = (row.figure, row.setting, row.result, row.runs, row.note)
        lines.append(f"| {row.number} | " + " | ".join(cell(c) for c in cells) + " |")
    return "\n".join(lines)


# --- untimed set-up ----------------------------------------------------------------------


def head_data(bench: Bench) -> tuple[Path, str]:
    """The head loop's folder and its description: all flowers, or a copied subset."""
    if bench.plan.head_subset is None:
        return bench.flowers, f"all of {bench.flowers}"
    per_class = bench.plan.head_subset
    folder = bench.work / f"flowers-{per_class}"
    return folder, f"the first {per_class} photos of each flowers class, copied"


def setup_steps(bench: Bench) -> dict[str, Callable[[], Path]]:
    """Named untimed steps: the temporary projects rows 4-6 measure, caches built."""
    work, plan = bench.work, bench.plan
    data, _ = head_data(bench)
    steps: dict[str, Callable[[], Path]] = {
        f"head{size}": (lambda size=size: head_setup(work / f"head-{size}", data, size))
        for size in plan.head_sizes if bench.wanted({4})
    }
    if bench.wanted({11}):
        steps["ttacc"] = lambda: ttacc_setup(work / "ttacc", data)
    if bench.wanted({8}):
        steps["export"] = lambda: sample_setup(work / "export", "export", tiny=plan.noop_tiny)
    if bench.wanted({5}):
        steps["noop"] = lambda: sample_setup(work / "noop", tiny=plan.noop_tiny)
    for per_class in (plan.sample_sizes or ()) if bench.wanted({5, 6}) else ():
        steps[f"sample{per_class}"] = (lambda n=per_class: sample_setup(
            work / f"sample-{n}", "validate",
            changes={"sample.images_per_class": n, "backbone.weights": "none",
                     # From about 1,000 drawn shapes on, two of them (of different classes)
                     # can hash as near copies: dropped, as flowers' duplicates are.
                     "data.images.duplicates": "drop"}))
    return steps


def run_setups(bench: Bench) -> None:
    """Every untimed step, two at a time, all finished before anything is timed."""
    data, _ = head_data(bench)
    if bench.plan.head_subset is not None and bench.wanted({4, 10, 11}):
        try:
            subset_folder(bench.flowers, data, bench.plan.head_subset)
        except OSError as err:  # the head loop's rows will say what is missing
            print(f"[bench] error: {one_line(err)}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    print("[bench] untimed set-up: temporary projects and their caches", file=sys.stderr,
          flush=True)
    with ThreadPoolExecutor(max_workers=2) as pool:
        bench.setups = {name: pool.submit(step) for name, step in setup_steps(bench).items()}
        wait(bench.setups.values())
    failed = [name for name, future in bench.setups.items() if future.exception()]
    print(f"[bench]   done in {time.perf_counter() - start:.0f} s"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr, flush=True)


# --- 1-3: matmul and features ------------------------------------------------------------


def matmul_rows(bench: Bench) -> list[Row]:
    setting = "2048 x 2048 tf.linalg.matmul in a tf.function, after a warm-up"

    def measure(dtype: str) -> tuple[str, int, str]:
        rate = median(matmul_gflops(dtype, bench.plan.repeats))
        if dtype == "float32":
            bench.matmul_fp32 = rate
            return f"{rate:.1f} GFLOP/s", bench.plan.repeats, "the reference limit"
        bench.matmul_bf16 = rate
        ratio = f"{rate / bench.matmul_fp32:.1f}x float32" if bench.matmul_fp32 else ""
        return f"{rate:.1f} GFLOP/s", bench.plan.repeats, ratio

    return [attempt(1, f"{dtype} matmul", setting, lambda d=dtype: measure(d))
            for dtype in ("float32", "bfloat16")]


def feature_rows(bench: Bench) -> list[Row]:
    per_class, repeats = bench.plan.feature_images, bench.plan.repeats
    folder = bench.work / f"features-{per_class}"
    rows = []
    for size in (128, 224):
        setting = (f"ResNet50 (random weights), {size} px, batch 32, "
                   f"first {per_class} photos of each flowers class")

        def project(size: int = size) -> tuple[str, int, str]:
            if not folder.is_dir():
                subset_folder(bench.flowers, folder, per_class)
            paths, labels, _ = image_files(folder)
            rate = median(project_features(paths, labels, size, repeats))
            bench.project_rate[size] = rate
            gflops = rate * resnet50_gflop(size)
            return (f"{rate:.1f} img/s = {gflops:.1f} GFLOP/s", repeats,
                    f"{fraction(gflops, bench)}; {len(paths)} images, one graph trace each pass")

        def plain(size: int = size) -> tuple[str, int, str]:
            if not folder.is_dir():
                subset_folder(bench.flowers, folder, per_class)
            rate = median(plain_features(folder, size, repeats))
            mine = bench.project_rate.get(size)
            ratio = f"project / plain = {mine / rate:.2f}" if mine else "ratio n/a"
            return f"{rate:.1f} img/s", repeats, ratio

        def bf16(size: int = size) -> tuple[str, int, str]:
            paths, labels, _ = image_files(folder)
            rate = median(project_features(paths, labels, size, repeats, "mixed_bfloat16"))
            gflops = rate * resnet50_gflop(size)
            limit = (f"{gflops / bench.matmul_bf16:.2f} of the bfloat16 matmul rate"
                     if bench.matmul_bf16 else "fraction n/a")
            mine = bench.project_rate.get(size)
            speedup = f"; {rate / mine:.2f}x float32" if mine else ""
            return f"{rate:.1f} img/s = {gflops:.1f} GFLOP/s", repeats, limit + speedup

        def auto(size: int = size) -> tuple[str, int, str]:
            paths, labels, _ = image_files(folder)
            label: list = []
            rate = median(project_features(paths, labels, size, repeats, keep=label,
                                           runtime=("auto", "auto")))
            mine = bench.project_rate.get(size)
            speedup = f"{rate / mine:.2f}x TensorFlow float32" if mine else "ratio n/a"
            return f"{rate:.1f} img/s", repeats, f"{speedup}; ran on {label[1]}"

        rows.append(attempt(2, "features, project path", setting, project))
        rows.append(attempt(3, "features, plain Keras", setting, plain))
        rows.append(attempt(2, "features, project path, bfloat16",
                            setting + ", distribute.mixed_precision=mixed_bfloat16", bf16))
        rows.append(attempt(2, "features, project path, inference auto",
                            setting + ", inference.runtime=auto, precision=auto", auto))
    rows.append(attempt(2, "head accuracy, TensorFlow float32 vs inference auto features",
                        "128 px; " + ("the same photos" if bench.plan.quick else
                                      "all flowers photos") +
                        "; the head section of params.yaml, stratified 70/30 split "
                        "(early stopping and score on the 30 %)",
                        lambda: precision_accuracy(bench)))
    return rows


def precision_accuracy(bench: Bench) -> tuple[str, int, str]:
    """The head's test accuracy on TensorFlow float32 features and on ``inference: auto``
    features (OpenVINO bfloat16 on a native-bf16 CPU) of the same photos, and the least
    per-image cosine between the two."""
    from pipeline.runtimes.select import min_cosine

    folder = (bench.work / f"features-{bench.plan.feature_images}" if bench.plan.quick
              else bench.flowers)
    paths, labels, _ = image_files(folder)
    reference: list = []
    project_features(paths, labels, 128, 1, keep=reference, runtime=("tensorflow", "float32"))
    auto: list = []
    project_features(paths, labels, 128, 1, keep=auto, runtime=("auto", "auto"))
    before, after = head_accuracy(reference[0], labels), head_accuracy(auto[0], labels)
    change = 100 * (after - before)
    return (f"TensorFlow float32 {before:.4f}, {auto[1]} {after:.4f}", 1,
            f"change {change:+.2f} points on {len(paths)} images (random backbone weights); "
            f"least per-image cosine of the features {min_cosine(auto[0], reference[0]):.5f}")


# --- 4-6: dvc in temporary copies ----------------------------------------------------------


def head_rows(bench: Bench) -> list[Row]:
    data, described = head_data(bench)
    runs = bench.plan.repeats
    rows = []
    for size in bench.plan.head_sizes:
        setting = (f"{size} px, {described}: `dvc exp run evaluate_head -S head.dropout=X` "
                   f"vs `notebook_head.py --image-size {size} --dropout X` (cold: the whole "
                   "script; warm cell: its head cell re-run, features in memory)")
        found: list = []

        def measure(size: int = size, found: list = found) -> tuple[str, int, str]:
            repo = bench.setup(f"head{size}")
            load = os.getloadavg()[0]
            found += head_times(repo, data, size, runs)
            p = median([r.pipeline for r in found])
            cold, warm = median([r.cold for r in found]), median([r.warm for r in found])
            return (f"pipeline {p:.1f} s, warm cell {warm:.1f} s, cold script {cold:.1f} s",
                    runs, f"pipeline / warm cell = {p / warm:.2f} (issue 32's target: at "
                    f"most 2); cold script / pipeline = {cold / p:.2f} (above 1: the "
                    f"pipeline is faster); {images_kept(repo)}; load average "
                    f"{load:.1f} before, {os.getloadavg()[0]:.1f} after")

        def shares(size: int = size, found: list = found) -> tuple[str, int, str]:
            if not found:
                raise RuntimeError("the head loop above did not run")
            total = median([r.pipeline for r in found])
            names = sorted({n for r in found for n in r.stages},
                           key=lambda n: -median([r.stages.get(n, 0.0) for r in found]))
            spent = {n: median([r.stages.get(n, 0.0) for r in found]) for n in names}
            own = median([r.pipeline - sum(r.stages.values()) for r in found])
            parts = [f"{n} {t:.1f} s ({t / total:.0%})" for n, t in spent.items()]
            return (f"DVC's own {own:.1f} s ({own / total:.0%}) of {total:.1f} s", runs,
                    "stage commands (each with DVC saving its outputs): " + ", ".join(parts)
                    + "; DVC's own: its start, the experiment's stash and commit, the "
                    "checks of the unchanged stages, dvc.lock's writes, most of it parsing "
                    f"dvc.yaml and dvc.lock ({yaml_setup(bench.setup(f'head{size}'))})")

        rows.append(attempt(4, "head loop", setting, measure))
        rows.append(attempt(4, "head loop, where the pipeline's time goes",
                            f"{size} px, the runs above", shares))
    return rows


def yaml_setup(repo: Path) -> str:
    """What DVC's YAML parsing costs scale with: the files' lines, and whether ruamel.yaml
    has its C parser (the ruamel.yaml.clib package; without it every parse is Python)."""
    import importlib.util

    lines = {name: len((repo / name).read_text().splitlines())
             for name in ("dvc.yaml", "dvc.lock")}
    parser = "C" if importlib.util.find_spec("_ruamel_yaml") else "pure Python"
    return (f"dvc.yaml {lines['dvc.yaml']} lines, dvc.lock {lines['dvc.lock']}, "
            f"ruamel.yaml's {parser} parser")


def noop_rows(bench: Bench) -> list[Row]:
    runs = bench.plan.repeats
    profile = ("tiny profile (6 images/class, 32 px, random weights, 1 epoch, frozen ResNet50 "
               "fine-tune, WRN-10-1)"
               if bench.plan.noop_tiny else "the repository's params.yaml")
    sizes = bench.plan.sample_sizes

    def repro() -> tuple[str, int, str]:
        seconds = median(noop_times(bench.setup("noop"), runs))
        return f"{seconds:.1f} s", runs, "only the always-changed checks run"

    def validate() -> tuple[str, int, str]:
        seconds = median(noop_times(bench.setup(f"sample{sizes[1]}"), runs, "validate"))
        return f"{seconds:.1f} s", runs, "sample, prepare and validate up to date"

    rows = [attempt(5, "no-op `dvc repro`", f"sample data, {profile}", repro)]
    if sizes is None:
        setting = "10,000 sample images (sample.images_per_class=2000)"
        rows.append(Row(5, "no-op `dvc repro validate`", setting, SKIPPED))
    else:
        setting = f"{5 * sizes[1]:,} sample images (sample.images_per_class={sizes[1]})"
        rows.append(attempt(5, "no-op `dvc repro validate`", setting, validate))
    return rows


def memory_rows(bench: Bench) -> list[Row]:
    sizes = bench.plan.sample_sizes or (200, 2000)
    few, many = (f"{5 * n:,}" for n in sizes)
    setting = f"sample data, {few} vs {many} images (images_per_class {sizes[0]} vs {sizes[1]})"
    if bench.plan.sample_sizes is None:
        return [Row(6, f"peak RSS, {name}", setting, SKIPPED) for name in MEMORY_STAGES]
    peaks: dict[int, dict[str, float]] = {}

    def measure(name: str) -> tuple[str, int, str]:
        for per_class in sizes:
            if per_class not in peaks:
                peaks[per_class] = stage_peaks(bench.setup(f"sample{per_class}"))
        small, large = peaks[sizes[0]][name], peaks[sizes[1]][name]
        return (f"{small:.0f} MB at {few}, {large:.0f} MB at {many}", 1,
                f"{many} / {few} = {large / small:.2f}; `python stages/{name}.py` alone")

    return [attempt(6, f"peak RSS, {name}", setting, lambda n=name: measure(n))
            for name in MEMORY_STAGES]


# --- 7: training speed ---------------------------------------------------------------------


def training_rows(bench: Bench) -> list[Row]:
    steps, repeats = bench.plan.train_steps, bench.plan.repeats
    models = (  # figure, px, batch, builder, whether to use ResNet50's 8.2 GFLOP at 224
        ("ResNet50 fine-tuning", 128, 16, lambda: resnet50_classifier(128), True),
        ("WRN-16-2 training", 64, 32, lambda: wrn_16_2(64), False),
    )
    rows = []
    for figure, size, batch, build, resnet in models:
        setting = (f"{size} px, batch {batch}, Adam, all trainable, random data, "
                   f"{steps} steps per run after a 1-step warm-up")

        def measure(size=size, batch=batch, build=build, resnet=resnet) -> tuple[str, int, str]:
            rates, counted = train_rates(build, size, batch, steps, repeats)
            rate = median(rates)
            forward = resnet50_gflop(size) if resnet else counted
            gflops = 3 * forward * rate
            return (f"{rate:.1f} img/s = {gflops:.1f} GFLOP/s", repeats,
                    f"{fraction(gflops, bench)}; forward {forward:.2f} GFLOP/image")

        rows.append(attempt(7, figure, setting, measure))
    return rows


# --- 9: the export ------------------------------------------------------------------------


def export_rows(bench: Bench) -> list[Row]:
    profile = ("tiny profile (32 px)" if bench.plan.noop_tiny
               else "the repository's params.yaml")
    measured: dict = {}

    def stage() -> tuple[str, int, str]:
        seconds, measured["export"] = export_run(bench.setup("export"))
        export = measured["export"]
        return (f"{seconds:.1f} s", 1, f"{export['model']} (temperature "
                f"{export['temperature']:g}), {export['test_images']} test images")

    def one(name: str) -> tuple[str, int, str]:
        f = measured["export"]["formats"][name]
        if "agreement" not in f:
            return f["status"], 1, f.get("reason", "")
        return (f"agreement {100 * f['agreement']:.1f} %, max |dp| {f['max_abs_diff']:.1e}, "
                f"{f['latency_ms_p50']:.1f}/{f['latency_ms_p95']:.1f} ms p50/p95, "
                f"{f['batch_images_per_second']:.1f} img/s", 1,
                f"{f['file']}, {f['size_bytes'] / 1e6:.2f} MB, accuracy change "
                f"{100 * f['accuracy_change']:+.1f} points, {f['status']}")

    setting = f"sample data, {profile}"
    rows = [attempt(9, "export stage", setting, stage)]
    for name in measured.get("export", {}).get("formats", {}):
        rows.append(attempt(9, f"export parity, {name}", setting, lambda n=name: one(n)))
    return rows


# --- 8: inference runtimes ------------------------------------------------------------------


def runtime_rows(bench: Bench) -> list[Row]:
    repeats = bench.plan.repeats
    rows = []
    for size in (128, 224):
        try:
            rates = {name: (median(r), label) for name, (r, label) in
                     runtime_rates(size, repeats).items()}
        except Exception as err:
            rows.append(Row(8, f"runtimes at {size} px", "", f"error: {one_line(err)}"))
            continue
        reference = rates["TensorFlow float32"][0]
        for name, (rate, label) in rates.items():
            gflops = rate * resnet50_gflop(size)
            limit = bench.matmul_bf16 if "bfloat16" in label else bench.matmul_fp32
            kind = "bfloat16" if "bfloat16" in label else "float32"
            share = (f"{gflops / limit:.2f} of the {kind} matmul rate" if limit
                     else "fraction n/a")
            rows.append(Row(8, f"forward, {name}",
                            f"ResNet50 (random weights), {size} px, batch 32, random images "
                            "in memory", f"{rate:.1f} img/s = {gflops:.0f} GFLOP/s",
                            str(repeats), f"{rate / reference:.2f}x TensorFlow float32; "
                            f"{share}; ran as {label}"))
            print(f"[bench]   {name} {size} px: {rate:.1f} img/s", file=sys.stderr,
                  flush=True)
    return rows


# --- 10: the first full repro on flowers --------------------------------------------------


def repro_rows(bench: Bench) -> list[Row]:
    data, described = head_data(bench)
    epochs = bench.plan.repro_epochs
    capped = (f"training epochs capped at {epochs}" if epochs is not None
              else "params.yaml's epochs")
    measured: dict[str, tuple[float, dict[str, float]]] = {}

    def one(setting: str) -> tuple[str, int, str]:
        repo = flowers_setup(bench.work / f"flowers-{setting}", data, setting, epochs)
        measured[setting] = stage_times(repo)
        total, stages = measured[setting]
        slowest = sorted(stages.items(), key=lambda kv: -kv[1])[:4]
        return (f"{total:.0f} s", 1, "; ".join(f"{name} {s:.0f} s" for name, s in slowest))

    rows = [attempt(10, f"first full `dvc repro`, {setting}",
                    f"{described}, inference " + ", ".join(
                        f"{k.split('.')[1]} {v}" for k, v in changes.items())
                    + f", random weights, {capped}", lambda s=setting: one(s))
            for setting, changes in RUNTIMES.items()]
    if len(measured) == 2:
        (before, per_before), (after, per_after) = measured["before"], measured["after"]
        changed = sorted(k for k in per_after if k in per_before
                         and abs(per_before[k] - per_after[k]) > 0.05 * per_before[k])
        rows.append(Row(10, "first full `dvc repro`, before / after", described,
                        f"{before / after:.2f}x", "1", "stages that moved by more than 5 %: "
                        + ", ".join(f"{k} {per_before[k]:.0f} -> {per_after[k]:.0f} s"
                                    for k in changed)))
    return rows


# --- 11: time to accuracy -----------------------------------------------------------------

RECIPE = "resnet9"  # the scratch entry built for time to accuracy


def interval(accuracy: float, total: int) -> str:
    from pipeline.evaluation.stats import wilson_interval

    low, high = wilson_interval(round(accuracy * total), total)
    return f"{accuracy:.3f} ({low:.3f}-{high:.3f})"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def ttacc_rows(bench: Bench) -> list[Row]:
    _, described = head_data(bench)
    measured: dict[str, float] = {}

    def tutorial() -> tuple[str, int, str]:
        seconds, out = tutorial_run(bench.setup("ttacc"))
        measured["T"] = seconds
        return (f"T = {seconds:.0f} s, test accuracy "
                f"{interval(out['test_accuracy'], out['test_images'])}", 1,
                f"whole process (fit {out['fit_seconds']:.0f} s); {out['test_images']} test "
                f"images, 95 % Wilson interval; load {loadavg()}")

    def recipe(times: int) -> tuple[str, int, str]:
        from pipeline.core import paths

        if "T" not in measured:
            raise RuntimeError("no tutorial time T to budget from (its row failed)")
        budget = times * measured["T"]
        wall, card, scores = budget_run(bench.setup("ttacc"), RECIPE, budget)
        total = len((bench.setup("ttacc") / paths.predictions(RECIPE))
                    .read_text().splitlines()) - 1
        plan = card.get("budget", {})
        return (f"test accuracy {interval(scores['accuracy'], total)}, stage {wall:.0f} s = "
                f"{wall / budget:.2f} x budget", 1,
                f"budget {budget:.0f} s; {card['epochs_run']} epochs run of "
                f"{plan.get('planned_epochs')} planned, stopped by {card['stopped_by']}; "
                f"{card['image_size']} px, {card['trainable_params']:,} trainable parameters; "
                f"the card's used_seconds {plan.get('used_seconds')}; load {loadavg()}")

    setting = f"{described}, duplicates dropped, the manifest's split"
    rows = [attempt(11, "time to accuracy, tutorial CNN",
                    f"{setting}; TensorFlow's tutorial CNN, 128 px, 15 epochs", tutorial)]
    rows += [attempt(11, f"time to accuracy, {RECIPE} at {t}T",
                     f"{setting}; scratch.{RECIPE} with budget_seconds = {t} x T",
                     lambda t=t: recipe(t)) for t in bench.plan.budgets]
    return rows


# --- the run -----------------------------------------------------------------------------

# Each section and the rows (of the module docstring) it gives.
SECTIONS = ((matmul_rows, {1}), (feature_rows, {2, 3}), (head_rows, {4}), (noop_rows, {5}),
            (memory_rows, {6}), (training_rows, {7}), (runtime_rows, {8}),
            (export_rows, {9}), (repro_rows, {10}), (ttacc_rows, {11}))


def measure_all(bench: Bench) -> list[Row]:
    rows = []
    for section, numbers in SECTIONS:
        if not bench.wanted(numbers):
            continue
        try:
            rows += section(bench)
        except Exception as err:  # a section failed outside its rows' own guards
            number = rows[-1].number + 1 if rows else 1
            rows.append(Row(number, section.__name__, "", f"error: {one_line(err)}"))
    return rows


def header(plan: Plan, hardware: str, argv: list[str]) -> str:
    command = " ".join(["python benchmarks/run.py", *argv])
    when = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return (
        f"Measured on {when} with `{command}` on this machine ({hardware.split(';')[0]}). "
        f"Each figure is the median of the number of runs in its `runs` column "
        f"(--repeats {plan.repeats}), measured one after another in one process, after "
        "the temporary projects were built untimed. Timings depend on the machine and on "
        "whatever else it was running: only ratios measured in one run (same command, "
        "same machine, same time) are comparable; figures from other runs are not."
    )


def whole_numbers(text: str, low: int, high: int, what: str) -> tuple[int, ...]:
    """Comma-separated whole numbers from ``low`` to ``high``, or argparse's error naming
    ``what`` they are."""
    try:
        numbers = tuple(int(n) for n in text.split(","))
    except ValueError:
        numbers = ()
    if not numbers or not all(low <= n <= high for n in numbers):
        raise argparse.ArgumentTypeError(f"{text!r}: {what} from {low} to {high}, "
                                         "comma-separated")
    return numbers


def row_numbers(text: str) -> set[int]:
    """--rows: row numbers of the module docstring (1-11)."""
    return set(whole_numbers(text, 1, 11, "row numbers"))


def budget_multiples(text: str) -> tuple[int, ...]:
    """--budgets: whole multiples of T, 1-16."""
    return whole_numbers(text, 1, 16, "whole multiples of T")


def image_sizes(text: str) -> tuple[int, ...]:
    """--head-sizes: image sizes in pixels, 32-1024."""
    return whole_numbers(text, 32, 1024, "image sizes in px")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="under 5 minutes: fewer images, head loop at 128 px on a subset, "
                             "tiny no-op profile, no memory rows")
    parser.add_argument("--repeats", type=int, default=None,
                        help="runs per figure, the median is quoted (default 3; --quick 1)")
    parser.add_argument("--output", type=Path, help="also write the Markdown here")
    parser.add_argument("--flowers", type=Path, default=FLOWERS,
                        help=f"the flowers folder of class folders (default {FLOWERS})")
    parser.add_argument("--rows", type=row_numbers,
                        default=None, help="only these rows of the table, e.g. 6 or 1,7 "
                                           "(row 1, the matmul rate, always runs)")
    parser.add_argument("--repro-epochs", type=int, default=None,
                        help="row 10: cap every finetune/scratch entry's epochs (default: "
                             "params.yaml's; --quick: 1)")
    parser.add_argument("--budgets", type=budget_multiples, default=(1, 2, 4),
                        help="row 11: the recipe's budgets in multiples of the tutorial's "
                             "time T, comma-separated (default 1,2,4; 1 alone: about 2T)")
    parser.add_argument("--head-sizes", type=image_sizes, default=None,
                        help="row 4: the image sizes of the head loop, comma-separated "
                             "(default 128,224; --quick: 128)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder (its path is printed)")
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if not args.flowers.is_dir() and (args.rows is None or args.rows & {2, 3, 4, 10, 11}):
        parser.error(f"--flowers {args.flowers}: no such folder (rows 2-4, 10 and 11 read it; "
                     "pass the folder of class folders, or --rows without them)")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    plan = Plan.of(args)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="transfer-bench-"))
    print(f"[bench] temporary folder {work}", file=sys.stderr, flush=True)
    bench = Bench(plan, args.flowers.resolve(), work, rows=args.rows)
    try:
        try:
            hardware = hardware_line()
        except Exception as err:
            hardware = f"hardware: error: {one_line(err)}"
        run_setups(bench)
        rows = measure_all(bench)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    markdown = f"{hardware}\n\n{table(rows)}\n"
    print(markdown)
    if args.output:
        args.output.write_text(f"{header(plan, hardware, argv)}\n\n{markdown}")
    print(f"[bench] finished in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
