"""Figures for the README's "Scaling out": strategies, the shared cache, the queue.

    python benchmarks/scaling.py [--repeats 3] [--output benchmarks/scaling.md]

Run it in the repository after `dvc repro` (it reads the committed pipeline's outputs from
this repository's DVC cache) with nothing else running. It prints a Markdown table and
writes it to ``--output``; nothing in the repository changes (all work happens in clones
under a temporary folder). Rows:

1. The head on cached features (the flowers photos at 128 px with random backbone
   weights, as benchmarks/run.py's head loop; the sample without them) under the default
   strategy and under ``mirrored`` over two logical CPU devices
   (``tf.config.set_logical_device_configuration``, as the tests do), the same global
   batch: accuracy on the validation and test splits, epochs, seconds; with the params'
   dropout and without (Dropout masks are drawn per replica, for its share of the batch,
   so with dropout the two runs differ beyond round-off).
2. The team's shared cache: a clone with every output `dvc push`es to a local-folder
   remote; a second, fresh clone `dvc pull`s, then `dvc repro` (nothing to run but the
   always-changed checks) and `dvc metrics diff` (empty). Seconds of each, and
   the remote's size.
3. Two head experiments queued (`dvc exp run --queue evaluate_head -S head.dropout=...`)
   and run with `dvc queue start --jobs 2`, then two others with `--jobs 1`: wall seconds
   from `queue start` until both are done, and the ratio.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_dvc import ROOT, CommandError, environment, head_setup, images_kept, sh, timed

# Run in a process of its own: the CPU must be split before TensorFlow runs anything.
STRATEGIES = """
import json, sys, time
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from pipeline.core.params import DistributeParams, load
from pipeline.core.process_setup import seed_everything
from pipeline.models.features import Features
from pipeline.runs.placement import place
from pipeline.training.head_recipes import train_head

params = load("params.yaml")
splits = {s: Features.load(f"data/features/{s}.npz") for s in ("train", "val", "test")}
out = {}
for dropout in (params.head.dropout, 0.0):
    for name in ("default", "mirrored"):
        placement = place(DistributeParams(strategy=name, mixed_precision="none"))
        # The same global batch: batch_size is per replica.
        head = params.head.model_copy(update={
            "batch_size": params.head.batch_size // placement.replicas, "dropout": dropout})
        seed_everything(params.seed)
        start = time.perf_counter()
        model, result = train_head(splits["train"], splits["val"], head, None, placement,
                                   params.seed)
        seconds = time.perf_counter() - start
        test = splits["test"]
        predicted = np.argmax(model.predict(test.features, verbose=0), axis=1)
        out[f"{name} {dropout}"] = {
            "label": placement.label(), "dropout": dropout, "seconds": seconds,
            "val_accuracy": result.summary(head.monitor)["val_accuracy"],
            "test_accuracy": float(np.mean(predicted == test.labels)),
            "val_loss": result.history["val_loss"]}
json.dump(out, sys.stdout)
"""


def stages_run_in(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def strategies(clone: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", STRATEGIES], cwd=clone, capture_output=True,
                          text=True, check=False, env=environment(clone))
    if proc.returncode != 0:
        raise CommandError(f"the strategies run failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def clone_with_outputs(dest: Path) -> Path:
    """A git clone of this repository with the committed run's outputs, pulled (untimed)
    from this repository's own DVC cache (a cache is laid out as a local remote is)."""
    cache = ROOT / ".dvc" / "cache"
    if not (cache / "files").is_dir():
        raise SystemExit(f"{cache} holds no outputs: run `dvc repro` in {ROOT} first")
    sh(dest.parent, "git", "clone", "-q", str(ROOT), str(dest))
    sh(dest, "git", "config", "user.name", "benchmark")
    sh(dest, "git", "config", "user.email", "benchmark@example.invalid")
    sh(dest, "dvc", "remote", "add", "--local", "origin", str(cache))
    sh(dest, "dvc", "pull", "-q", "-r", "origin")
    sh(dest, "dvc", "remote", "remove", "--local", "origin")
    return dest


def round_trip(team: Path, where: Path) -> dict:
    """Push from ``team`` to a fresh local remote; a fresh clone pulls, repros, diffs."""
    remote = where / "remote"
    sh(team, "dvc", "remote", "add", "-f", "-d", "storage", str(remote))
    sh(team, "git", "commit", "-qm", "shared cache", ".dvc/config")
    push = timed(team, "dvc", "push", "-q")
    colleague = where / "colleague"
    sh(where, "git", "clone", "-q", str(team), str(colleague))
    pull = timed(colleague, "dvc", "pull", "-q")
    start = time.perf_counter()
    repro = sh(colleague, "dvc", "repro")
    repro_seconds = time.perf_counter() - start
    diff = json.loads(sh(colleague, "dvc", "metrics", "diff", "--json").stdout or "{}")
    size = sum(f.stat().st_size for f in remote.rglob("*") if f.is_file())
    sh(team, "git", "reset", "-q", "--hard", "HEAD~1")  # the next round: a new remote
    return {"push": push, "pull": pull, "repro": repro_seconds,
            "ran": sorted(stages_run_in(repro.stdout)), "diff": diff, "mb": size / 1e6}


def queued(repo: Path, dropouts: list[float], jobs: int) -> float:
    """Wall seconds from `dvc queue start --jobs N` until the queued experiments are done."""
    for dropout in dropouts:
        sh(repo, "dvc", "exp", "run", "--queue", "-q", "evaluate_head",
           "-S", f"head.dropout={dropout}")
    start = time.perf_counter()
    sh(repo, "dvc", "queue", "start", "--jobs", str(jobs))
    while True:
        status = sh(repo, "dvc", "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(0.5)
    seconds = time.perf_counter() - start
    done = status.count("Success")
    if "Failed" in status or done < len(dropouts):
        raise CommandError(f"queued experiments failed: {status}")
    sh(repo, "dvc", "queue", "remove", "--success")
    return seconds


def spread(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of rows 2 and 3 (median)")
    parser.add_argument("--output", type=Path, default=Path(__file__).parent / "scaling.md")
    parser.add_argument("--flowers", type=Path, default=ROOT.parent / "shared/datasets/flowers",
                        help="photos for row 1 (the sample's head learns little from random "
                             "weights); the sample when the folder is missing")
    args = parser.parse_args()
    lines = ["| figure | value |", "|---|---|"]
    with tempfile.TemporaryDirectory(prefix="scaling-") as tmp:
        team = clone_with_outputs(Path(tmp) / "team")

        if args.flowers.is_dir():
            heads = head_setup(Path(tmp) / "flowers", args.flowers, 128)
            where = f"{images_kept(heads)} of {args.flowers}, 128 px, random weights"
        else:
            heads, where = team, "the sample (no flowers folder)"
        lines.append(f"| head features from | {where} |")
        scores = strategies(heads)
        for dropout in sorted({s["dropout"] for s in scores.values()}, reverse=True):
            one, two = scores[f"default {dropout}"], scores[f"mirrored {dropout}"]
            for s in (one, two):
                lines.append(f"| head, dropout {dropout}, {s['label']}: val / test accuracy, "
                             f"epochs, s | {s['val_accuracy']:.4f} / {s['test_accuracy']:.4f}, "
                             f"{len(s['val_loss'])}, {s['seconds']:.1f} |")
            first = abs(one["val_loss"][0] - two["val_loss"][0]) / abs(one["val_loss"][0])
            lines.append(f"| head, dropout {dropout}: relative difference of the first "
                         f"epoch's val loss, default vs mirrored x2 | {first:.1e} |")

        trips = [round_trip(team, Path(tmp) / f"trip{i}") for i in range(args.repeats)]
        for key, label in (("push", "`dvc push`"), ("pull", "`dvc pull` (fresh clone)"),
                           ("repro", "`dvc repro` after the pull")):
            values = [t[key] for t in trips]
            lines.append(f"| {label}, s (median of {len(values)}) | "
                         f"{statistics.median(values):.1f} ({spread(values)}) |")
        lines.append(f"| remote size, MB | {trips[0]['mb']:.1f} |")
        lines.append(f"| stages run after the pull; `dvc metrics diff` | "
                     f"{', '.join(trips[0]['ran'])}; {trips[0]['diff'] or 'empty'} |")

        values = iter(round(0.30 + 0.01 * i, 2) for i in range(4 * args.repeats))
        two, one = [], []
        for _ in range(args.repeats):
            two.append(queued(team, [next(values), next(values)], jobs=2))
            one.append(queued(team, [next(values), next(values)], jobs=1))
        m2, m1 = statistics.median(two), statistics.median(one)
        lines.append(f"| two queued head experiments, `--jobs 2`, s | {m2:.1f} ({spread(two)}) |")
        lines.append(f"| the same, `--jobs 1` (one after another), s | {m1:.1f} "
                     f"({spread(one)}) |")
        lines.append(f"| `--jobs 1` / `--jobs 2` | {m1 / m2:.2f}x |")
        shown = json.loads(sh(team, "dvc", "exp", "show", "--json").stdout)
        count = sum(len(top.get("experiments") or []) for top in shown)
        lines.append(f"| experiments with their own metrics in `dvc exp show` | {count} |")
    table = "\n".join(lines)
    print(table)
    args.output.write_text(
        "# Scaling-out figures\n\n`python benchmarks/scaling.py` (see its docstring): row 1 "
        "on the flowers photos' features, the others on the committed sample run.\n\n"
        + table + "\n")


if __name__ == "__main__":
    main()
