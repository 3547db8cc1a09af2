"""The quality gate: is the model the pipeline recommends fit to ship, against a baseline?

    python -m pipeline.gate [--against REV]   # REV: a git revision, default HEAD

In the spirit of TFX's "blessing": the workspace's recommended model (metrics/report.json)
must reach ``gate.min`` on ``gate.metric``, and must not have dropped by more than
``gate.max_drop`` against the metrics committed at REV *beyond its confidence interval*
(for accuracy: the baseline minus the top of the workspace's 95 % Wilson interval), so
noise on a small test split is not called a regression. And dvc.lock must match
params.yaml and the code: otherwise the committed metrics are not what the committed
pipeline produces. Prints a Markdown verdict (fit for a CI job summary) listing every
check with its value and threshold; exit 1 when one fails, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.core.params import GateParams, load

REPORT_METRICS = paths.METRICS / "report.json"


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    threshold: str
    passed: bool
    detail: str = ""


def _metric(report: dict, evaluation: dict, metric: str) -> float:
    if metric == "accuracy":
        return float(report["accuracy"])
    return float(evaluation[metric])


def committed_json(rev: str, path: Path) -> dict | None:
    """A JSON file as committed at ``rev``; None when it is not there."""
    done = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        return None
    return json.loads(done.stdout)


def lock_status() -> list[str]:
    """Stages whose params or code differ from what dvc.lock recorded (``dvc status``).

    Missing data and outputs (a fresh clone without DVC's cache) and the always-changed
    weights check are not drift: only changed params and changed files that are in git.
    """
    done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"dvc status failed: {done.stderr.strip()}")
    drift = []
    for stage, changes in json.loads(done.stdout or "{}").items():
        for change in changes:
            if not isinstance(change, dict):
                continue  # "always changed"
            if "changed deps" not in change:
                continue  # changed outs: missing data is not drift
            for dep, how in change["changed deps"].items():
                if isinstance(how, dict):  # a params file: {"head": "modified"}
                    drift.append(f"{stage}: params {', '.join(sorted(how))} in {dep}")
                elif how == "modified" and _tracked(dep):
                    drift.append(f"{stage}: {dep} modified")
    return drift


def _tracked(path: str) -> bool:
    done = subprocess.run(["git", "ls-files", "--error-unmatch", path], capture_output=True)
    return done.returncode == 0


def evaluate(gate: GateParams, against: str) -> list[Check]:
    checks = []
    try:
        report = json.loads(REPORT_METRICS.read_text(encoding="utf-8"))
    except OSError as err:
        raise PipelineError(f"{REPORT_METRICS}: {err.strerror}; run `dvc repro` first") from None
    model = report["recommended"]
    evaluation_file = paths.METRICS / "evaluate" / f"{model}.json"
    evaluation = json.loads(evaluation_file.read_text(encoding="utf-8"))
    value = _metric(report, evaluation, gate.metric)
    checks.append(Check(f"{model} {gate.metric} >= min", f"{value:.4f}", f"{gate.min:.4f}",
                        value >= gate.min))

    base_report = committed_json(against, REPORT_METRICS)
    if base_report is None:
        checks.append(Check(f"drop of {gate.metric} against {against}", "no baseline",
                            f"<= {gate.max_drop:.4f}", True,
                            f"{REPORT_METRICS} is not committed at {against}"))
    else:
        base_model = base_report["recommended"]
        base_eval = committed_json(against, paths.METRICS / "evaluate" / f"{base_model}.json")
        base = _metric(base_report, base_eval or {}, gate.metric)
        # Accuracy has an interval: only a drop beyond its top end counts.
        top = float(report["accuracy_high"]) if gate.metric == "accuracy" else value
        drop = base - top
        where = "the top of its 95 % interval" if gate.metric == "accuracy" else "it"
        change = value - base
        low = float(report["accuracy_low"]) if gate.metric == "accuracy" else value
        noise = (" (within the 95 % interval: not a significant change)"
                 if gate.metric == "accuracy" and low <= base <= top else "")
        checks.append(Check(
            f"drop of {gate.metric} against {against} ({base_model} {base:.4f})",
            f"{drop:+.4f}", f"<= {gate.max_drop:.4f}", drop <= gate.max_drop,
            f"baseline {base:.4f} minus {where} ({top:.4f}); change {change:+.4f}{noise}"))

    drift = lock_status()
    checks.append(Check("dvc.lock matches params.yaml and the code",
                        "in sync" if not drift else f"{len(drift)} stage change(s)",
                        "in sync", not drift, "; ".join(drift[:6])))
    return checks


def verdict(checks: list[Check], against: str) -> str:
    ok = all(c.passed for c in checks)
    lines = [f"## Quality gate: {'PASSED' if ok else 'FAILED'} (against `{against}`)", "",
             "| check | value | threshold | result |", "|---|---:|---:|---|"]
    for c in checks:
        note = f" — {c.detail}" if c.detail else ""
        lines.append(f"| {c.name} | {c.value} | {c.threshold} | "
                     f"{'pass' if c.passed else '**FAIL**'}{note} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.gate",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("--against", default="HEAD", metavar="REV",
                        help="git revision whose committed metrics are the baseline "
                        "(default: HEAD; in CI the target branch)")
    args = parser.parse_args(argv)
    try:
        checks = evaluate(load().gate, args.against)
    except PipelineError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(verdict(checks, args.against))
    for c in checks:
        if not c.passed:
            print(f"gate failed: {c.name}: {c.value} (threshold {c.threshold})", file=sys.stderr)
    return 0 if all(c.passed for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
