"""The head's test accuracy by solver: Keras' minibatch fit against the L-BFGS fit.

On the cached features of a project (``data/features/{train,val,test}.npz``, e.g. a copy
reading the flowers folder after `dvc repro features`), pooled and split again, stratified
70/15/15 as the prepare stage splits, with each seed; both solvers fit params.yaml's
``head`` section (with each ``--dropouts`` value) on the same splits and are scored on the
same test images. Prints one line per fit and the mean over the seeds per solver and
dropout, and the difference (L-BFGS - Keras, in points). Issue 32's criterion: the mean
within 1 point.

    python benchmarks/head_solvers.py PROJECT [--seeds 1,2,3] [--dropouts 0,0.2,0.5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/head_solvers.py` without installing
    sys.path.insert(0, str(ROOT))

import pipeline  # noqa: E402,F401 - before TensorFlow is imported: its start-up noise filtered
from pipeline.core.params import load  # noqa: E402
from pipeline.data.splits import stratified_split  # noqa: E402
from pipeline.models.features import Features  # noqa: E402


def resplit(project: Path, seed: int) -> tuple[Features, Features, Features]:
    """The project's features pooled, then split 70/15/15 by class with ``seed``."""
    parts = [Features.load(project / "data" / "features" / f"{s}.npz")
             for s in ("train", "val", "test")]
    x = np.concatenate([p.features for p in parts])
    y = np.concatenate([p.labels for p in parts])
    paths = np.concatenate([p.paths for p in parts])
    split = np.array(stratified_split([str(v) for v in y],
                                      {"train": 0.7, "val": 0.15, "test": 0.15}, seed))
    return tuple(Features(x[split == s], y[split == s], paths[split == s], parts[0].classes)
                 for s in ("train", "val", "test"))


def test_accuracy(solver: str, head, train: Features, val: Features, test: Features,
                  seed: int) -> tuple[float, float, str]:
    """(test accuracy, seconds, best/run) of one fit."""
    started = time.perf_counter()
    if solver == "keras":
        import keras

        from pipeline.core.params import DistributeParams
        from pipeline.runs.placement import place
        from pipeline.training.head_recipes import train_head

        keras.utils.set_random_seed(seed)
        placement = place(DistributeParams(strategy="default", mixed_precision="none"))
        model, result = train_head(train, val, head, None, placement, seed=seed)
        proba = model.predict(test.features, verbose=0)
    else:
        from pipeline.models.head_file import standardize
        from pipeline.training.head_recipes import fit_head

        model, result = fit_head(train, val, head, None)
        z = standardize(test.features, model.mean, model.variance)
        proba = z @ model.kernel + model.bias  # the argmax of the logits
    seconds = time.perf_counter() - started
    accuracy = float((proba.argmax(axis=1) == test.labels).mean())
    return accuracy, seconds, f"best {result.best_epoch}/{result.epochs_run}"


def numbers(text: str, kind: type) -> list:
    return [kind(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("project", type=Path, help="a project folder with data/features/")
    parser.add_argument("--seeds", type=lambda t: numbers(t, int), default=[1, 2, 3])
    parser.add_argument("--dropouts", type=lambda t: numbers(t, float), default=None,
                        help="head.dropout values (default: params.yaml's)")
    args = parser.parse_args()
    params = load(args.project / "params.yaml")
    dropouts = args.dropouts or [params.head.dropout]
    means: dict[tuple[str, float], float] = {}
    for dropout in dropouts:
        for solver in ("keras", "lbfgs"):
            head = params.head.model_copy(update={"solver": solver, "dropout": dropout})
            scores = []
            for seed in args.seeds:
                accuracy, seconds, how = test_accuracy(solver, head, *resplit(args.project,
                                                                              seed), seed)
                scores.append(accuracy)
                print(f"dropout {dropout} {solver} seed {seed}: test accuracy {accuracy:.4f} "
                      f"({how}, {seconds:.1f} s)", flush=True)
            means[solver, dropout] = statistics.mean(scores)
    for dropout in dropouts:
        keras_mean, lbfgs_mean = means["keras", dropout], means["lbfgs", dropout]
        print(f"dropout {dropout}: mean test accuracy over seeds {args.seeds}: keras "
              f"{keras_mean:.4f}, lbfgs {lbfgs_mean:.4f}, lbfgs - keras "
              f"{100 * (lbfgs_mean - keras_mean):+.2f} points")


if __name__ == "__main__":
    main()
