"""Whether a change kept the pipeline's behaviour: every non-timing metric, and every
test prediction, of the workspace against a git revision.

    python benchmarks/same_metrics.py e41fa7c     # after `dvc repro` on the same machine

Compares the metrics files of ``dvc metrics show`` at both (results only: timings, speeds,
sizes and the machine are run facts, in reports/runs/, which this leaves out) and the
committed prediction tables ``reports/predictions/*.csv`` (every probability, to 1e-6).
Prints each difference; exits 1 if there is one, 0 if none. Determinism holds on one
machine: the same CPU flags, runtime and precision (the run facts name them), so compare
runs of one machine. A revision from before the run facts had timings, sizes and the
machine among its metrics (left out here) and the export's per-format figures as
``formats.<format>.*`` (now ``<format>_agreement``): against it, the export's differ.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

# What older revisions kept among their metrics and are run facts now (pipeline.core.run_facts).
TIMING = re.compile(r"seconds|per_second|latency|machine|size_bytes|runtime|distribute|shipped_")
TOLERANCE = 1e-6


def flat(node: object, prefix: str = "") -> dict[str, object]:
    if isinstance(node, dict):
        out: dict[str, object] = {}
        for key, value in node.items():
            out |= flat(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    return {prefix: node}


def metric_files() -> list[str]:
    """The metrics files dvc.yaml declares, as `dvc metrics show` finds them."""
    cmd = ["dvc", "metrics", "show", "--json"]
    shown = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    return sorted({path for rev in shown.values() for path in rev.get("data", {})})


def metrics(files: list[str], rev: str | None) -> dict[str, object]:
    """Non-timing metrics of ``files`` in the workspace (rev None) or at ``rev``."""
    out = {}
    for path in files:
        if rev is None:
            text = Path(path).read_text() if Path(path).exists() else None
        else:
            shown = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True,
                                   text=True, check=False)
            text = shown.stdout if shown.returncode == 0 else None
        if text is None:
            out[f"{path}:"] = "missing"
            continue
        for name, value in flat(json.loads(text)).items():
            if not TIMING.search(name):
                out[f"{path}:{name}"] = value
    return out


def differs(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return not abs(float(a) - float(b)) <= TOLERANCE  # NaN: a difference
    return a != b


def predictions(rev: str) -> list[str]:
    found = []
    listed = subprocess.run(["git", "ls-tree", "--name-only", rev, "reports/predictions/"],
                            capture_output=True, text=True, check=False).stdout.split()
    there = {Path(p) for p in listed if p.endswith(".csv")}
    found += [f"{p}: at {rev}, not in the workspace" for p in sorted(there)
              if not p.exists()]
    for path in sorted(Path("reports/predictions").glob("*.csv")):
        shown = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"],
                               capture_output=True, text=True, check=False)
        if shown.returncode != 0:
            found.append(f"{path}: not at {rev}")
            continue
        old, new = pd.read_csv(io.StringIO(shown.stdout)), pd.read_csv(path)
        if list(old.columns) != list(new.columns) or len(old) != len(new):
            found.append(f"{path}: columns or rows differ")
            continue
        numeric = old.select_dtypes("number").columns
        worst = (old[numeric] - new[numeric]).abs().max().max() if len(numeric) else 0.0
        text = [c for c in old.columns if c not in numeric]
        if not worst <= TOLERANCE or not old[text].equals(new[text]):  # NaN: a difference
            found.append(f"{path}: largest probability difference {worst:.2e}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare the workspace with")
    args = parser.parse_args(argv)
    files = metric_files()
    before, after = metrics(files, args.rev), metrics(files, None)
    found = [f"{k}: {before.get(k)!r} -> {after.get(k)!r}"
             for k in sorted(set(before) | set(after)) if differs(before.get(k), after.get(k))]
    found += predictions(args.rev)
    for line in found:
        print(line)
    print(f"{len(set(before) | set(after))} non-timing metrics and "
          f"{len(list(Path('reports/predictions').glob('*.csv')))} prediction tables "
          f"compared with {args.rev}: {len(found)} difference(s)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
