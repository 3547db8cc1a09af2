"""The quality gate: is this run fit to ship, against the run committed at a baseline?

    python -m pipeline.gate [--against REV] [--verbose | -q]   # REV: default HEAD

In the spirit of TFX's "blessing", on the committed metrics and per-image predictions
(reports/predictions/<model>.csv, one row per test image in the same order for every run
on the same data):

- the recommended model (metrics/report.json) must reach ``gate.min`` on ``gate.metric``;
- every model is compared with its own baseline at REV, and the shipped model with the one
  shipped at REV, *paired on the same test images*: McNemar's exact test on per-image
  correctness (which images it fixed, which it broke) has far more power than comparing
  two intervals. A significant drop (p < ``gate.alpha``) of the recommended model fails;
  of any other model, it fails when larger than ``gate.max_drop`` and is noted otherwise.
  A change with p >= alpha is noise, never called an improvement;
- when the two runs scored different test images (the data changed) nothing can be
  paired: the verdict says so and falls back to the unpaired rule (the recommended
  model's drop beyond the top of its 95 % Wilson interval must be <= ``gate.max_drop``);
- dvc.lock must match params.yaml and the code: otherwise the committed metrics are not
  what the committed pipeline produces.

Prints a Markdown verdict (fit for a CI job summary) with every model's baseline, now,
change and p, then the other checks; exit 1 when one fails, 2 when it cannot run.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.core import logs, paths
from pipeline.core.errors import PipelineError
from pipeline.core.params import GateParams, load
from pipeline.evaluation import predictions
from pipeline.evaluation.stats import format_p_value, mcnemar_exact

log = logging.getLogger(__name__)
REPORT_METRICS = paths.METRICS / "report.json"
EVALUATIONS = paths.METRICS / "evaluate"


@dataclass(frozen=True)
class Check:
    name: str
    value: str
    threshold: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Change:
    """One model (or the shipped one against the previously shipped) on the same images."""

    name: str
    baseline: float | None
    now: float | None
    p_value: float | None  # None: not paired (no baseline, or no predictions)
    fixed: int = 0  # images right now and wrong at the baseline
    broken: int = 0  # images wrong now and right at the baseline
    result: str = ""
    passed: bool = True


@dataclass
class Verdict:
    against: str
    metric: str
    note: str
    changes: list[Change] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.changes) and all(c.passed for c in self.checks)


@dataclass(frozen=True)
class Run:
    """One run's results: the report's metrics, each model's metrics and predictions."""

    report: dict
    metrics: dict[str, dict]
    predictions: dict[str, pd.DataFrame]

    def value(self, model: str, metric: str) -> float | None:
        found = self.metrics.get(model, {}).get(metric)
        if found is None and metric == "accuracy" and model in self.predictions:
            return float(self.predictions[model]["correct"].mean())
        return None if found is None else float(found)


def _git_show(rev: str, path: Path) -> str | None:
    done = subprocess.run(["git", "show", f"{rev}:{path.as_posix()}"], capture_output=True,
                          text=True)
    log.debug("gate: git show %s:%s: %s", rev, path.as_posix(),
              "found" if done.returncode == 0 else "not there")
    return done.stdout if done.returncode == 0 else None


def committed_json(rev: str, path: Path) -> dict | None:
    """A JSON file as committed at ``rev``; None when it is not there."""
    text = _git_show(rev, path)
    return None if text is None else json.loads(text)


def _committed_models(rev: str) -> list[str]:
    done = subprocess.run(["git", "ls-tree", "--name-only", f"{rev}:{EVALUATIONS.as_posix()}"],
                          capture_output=True, text=True)
    return [Path(n).stem for n in done.stdout.split() if n.endswith(".json")]


def workspace_run(models: list[str]) -> Run:
    try:
        report = json.loads(REPORT_METRICS.read_text(encoding="utf-8"))
    except OSError as err:
        raise PipelineError(f"{REPORT_METRICS}: {err.strerror}; run `dvc repro` first") from None
    metrics, preds = {}, {}
    for m in models:
        if (EVALUATIONS / f"{m}.json").is_file():
            metrics[m] = json.loads((EVALUATIONS / f"{m}.json").read_text(encoding="utf-8"))
        if (paths.PREDICTIONS / f"{m}.csv").is_file():
            preds[m] = predictions.read(paths.PREDICTIONS / f"{m}.csv")
    return Run(report, metrics, preds)


def committed_run(rev: str) -> Run | None:
    """The run committed at ``rev``; None when it has no metrics/report.json."""
    report = committed_json(rev, REPORT_METRICS)
    if report is None:
        return None
    metrics, preds = {}, {}
    for m in _committed_models(rev):
        metrics[m] = committed_json(rev, EVALUATIONS / f"{m}.json") or {}
        text = _git_show(rev, paths.PREDICTIONS / f"{m}.csv")
        if text is not None:
            preds[m] = predictions.read(io.StringIO(text))
    return Run(report, metrics, preds)


def _images(table: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(table["path"], table["label"], strict=True))


def pairing(now: Run, base: Run, against: str) -> str | None:
    """None when every model both runs scored saw the same test images; else why not."""
    both = [m for m in now.predictions if m in base.predictions]
    if not both:
        return f"no per-image predictions committed at `{against}` for any model of this run"
    for m in both:
        a, b = _images(now.predictions[m]), _images(base.predictions[m])
        if a != b:
            return (f"the test images differ between `{against}` and the workspace ({m}: "
                    f"{len(b)} then, {len(a)} now, {len(set(a) & set(b))} in common): the data "
                    "changed, so no image can be paired")
    return None


def _paired(name: str, now_correct, base_correct, base: float | None, value: float | None,
            gate: GateParams, recommended: bool) -> Change:
    test = mcnemar_exact(now_correct, base_correct)
    fixed, broken = test.a_only, test.b_only
    drop = (base - value) if base is not None and value is not None else 0.0
    p = test.p_value
    if fixed == broken == 0:
        result, passed = "no change: the same images right and wrong", True
    elif p >= gate.alpha:
        result, passed = f"within noise ({format_p_value(p)} >= alpha {gate.alpha:g})", True
    elif fixed > broken:
        result, passed = "significant improvement", True
    elif recommended:
        result, passed = "significant regression of the recommended model", False
    elif drop > gate.max_drop:
        result, passed = f"significant drop beyond max_drop {gate.max_drop:g}", False
    else:
        result, passed = (f"note: significant drop, within max_drop {gate.max_drop:g} "
                          "(not the recommended model)"), True
    return Change(name, base, value, p, fixed, broken, result, passed)


def compare_models(now: Run, base: Run, gate: GateParams, models: list[str],
                   against: str) -> list[Change]:
    """Each model against its own baseline, then the shipped against the previously shipped."""
    shipped, was_shipped = now.report["recommended"], base.report["recommended"]
    changes = []
    for m in [*models, *[m for m in base.metrics if m not in models]]:
        star = " ★" if m == shipped else ""
        before, value = base.value(m, gate.metric), now.value(m, gate.metric)
        if m not in now.predictions or m not in base.predictions:
            why = ("new: no baseline" if m not in base.metrics else
                   "gone: not in this run" if m not in now.metrics else
                   "not paired: predictions missing in one run")
            changes.append(Change(m + star, before, value, None, result=why))
            continue
        changes.append(_paired(m + star, now.predictions[m]["correct"].to_numpy(bool),
                               base.predictions[m]["correct"].to_numpy(bool),
                               before, value, gate, recommended=m == shipped))
    if shipped != was_shipped and shipped in now.predictions and was_shipped in base.predictions:
        changes.append(_paired(
            f"shipped: {shipped} ★ vs {was_shipped} (shipped at `{against}`)",
            now.predictions[shipped]["correct"].to_numpy(bool),
            base.predictions[was_shipped]["correct"].to_numpy(bool),
            base.value(was_shipped, gate.metric), now.value(shipped, gate.metric), gate,
            recommended=True))
    return changes


def unpaired_check(now: Run, base: Run, gate: GateParams, against: str) -> Check:
    """The recommended model's drop against the shipped one, beyond its 95 % interval."""
    value = now.value(now.report["recommended"], gate.metric)
    base_model = base.report["recommended"]
    before = base.value(base_model, gate.metric)
    if gate.metric == "accuracy":
        value, before = float(now.report["accuracy"]), float(base.report["accuracy"])
    if value is None or before is None:
        return Check(f"drop of {gate.metric} against {against}", "not recorded",
                     f"<= {gate.max_drop:.4f}", True, f"no {gate.metric} in one of the runs")
    # Accuracy has an interval: only a drop beyond its top end counts.
    top = float(now.report["accuracy_high"]) if gate.metric == "accuracy" else value
    low = float(now.report["accuracy_low"]) if gate.metric == "accuracy" else value
    where = "the top of its 95 % interval" if gate.metric == "accuracy" else "it"
    noise = (" (within the 95 % interval: not a significant change)"
             if gate.metric == "accuracy" and low <= before <= top else "")
    drop = before - top
    return Check(f"unpaired drop of {gate.metric} against {against} ({base_model} {before:.4f})",
                 f"{drop:+.4f}", f"<= {gate.max_drop:.4f}", drop <= gate.max_drop,
                 f"baseline {before:.4f} minus {where} ({top:.4f}); change "
                 f"{value - before:+.4f}{noise}")


def lock_status() -> list[str]:
    """Stages whose params or code differ from what dvc.lock recorded (``dvc status``).

    Missing data and outputs (a fresh clone without DVC's cache) and the always-changed
    checks (source, weights, scratch_weights) are not drift: only changed params and
    changed files that are in git.
    A folder dependency that mixes both (``models``: cards in git, ``.keras`` files in
    DVC's cache) reads "modified" when its cached files are missing; it is drift then
    only if one of its files in git differs from the commit.
    """
    done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    if done.returncode != 0:
        raise PipelineError(f"dvc status failed: {done.stderr.strip()}")
    status = json.loads(done.stdout or "{}")
    missing = [out for changes in status.values() for change in changes
               if isinstance(change, dict)
               for out, how in change.get("changed outs", {}).items()
               if how in ("deleted", "not in cache")]
    drift = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                continue  # "always changed"
            if "changed deps" not in change:
                continue  # changed outs: missing data is not drift
            for dep, how in change["changed deps"].items():
                if isinstance(how, dict):  # a params file: {"head": "modified"}
                    drift.append(f"{stage}: params {', '.join(sorted(how))} in {dep}")
                elif how == "modified" and _tracked(dep):
                    inside = [out for out in missing if out.startswith(dep.rstrip("/") + "/")]
                    if not inside or _changed_in_git(dep):
                        drift.append(f"{stage}: {dep} modified")
    return drift


def _changed_in_git(path: str) -> bool:
    """Whether a file in git under ``path`` differs from the commit (or is new to it)."""
    done = subprocess.run(["git", "status", "--porcelain", "--", path], capture_output=True,
                          text=True)
    return bool(done.stdout.strip())


def _tracked(path: str) -> bool:
    done = subprocess.run(["git", "ls-files", "--error-unmatch", path], capture_output=True)
    return done.returncode == 0


def evaluate(gate: GateParams, against: str, models: list[str]) -> Verdict:
    now = workspace_run(models)
    model = now.report["recommended"]
    value = (float(now.report["accuracy"]) if gate.metric == "accuracy"
             else now.value(model, gate.metric))
    if value is None:
        raise PipelineError(f"{EVALUATIONS / model}.json has no {gate.metric} (gate.metric)")
    floor = Check(f"{model} {gate.metric} >= min", f"{value:.4f}", f"{gate.min:.4f}",
                  value >= gate.min)
    verdict = Verdict(against, gate.metric, "", checks=[floor])

    base = committed_run(against)
    if base is None:
        verdict.note = f"No baseline: {REPORT_METRICS} is not committed at `{against}`."
    elif (why := pairing(now, base, against)) is not None:
        verdict.note = f"Not paired: {why}. Falling back to the unpaired rule."
        verdict.checks.append(unpaired_check(now, base, gate, against))
    else:
        n = len(next(iter(now.predictions.values())))
        verdict.note = (
            f"Each model against its own baseline at `{against}`, paired on the same {n} test "
            f"images (McNemar's exact test on per-image correctness, alpha = {gate.alpha:g}): "
            f"a significant drop of the recommended model (★) fails; of another model, when "
            f"larger than max_drop ({gate.max_drop:g}).")
        verdict.changes = compare_models(now, base, gate, models, against)

    drift = lock_status()
    verdict.checks.append(Check("dvc.lock matches params.yaml and the code",
                                "in sync" if not drift else f"{len(drift)} stage change(s)",
                                "in sync", not drift, "; ".join(drift[:6])))
    return verdict


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _delta(c: Change) -> str:
    return "–" if c.baseline is None or c.now is None else f"{c.now - c.baseline:+.4f}"


def render(verdict: Verdict) -> str:
    lines = [f"## Quality gate: {'PASSED' if verdict.passed else 'FAILED'} "
             f"(against `{verdict.against}`)", "", verdict.note, ""]
    if verdict.changes:
        lines += [f"| model | baseline {verdict.metric} | now | change | McNemar p | "
                  "fixed / broken | result |", "|---|---:|---:|---:|---:|---:|---|"]
        for c in verdict.changes:
            p = ("–" if c.p_value is None
                 else format_p_value(c.p_value).removeprefix("p = ").removeprefix("p "))
            lines.append(f"| {c.name} | {_num(c.baseline)} | {_num(c.now)} | {_delta(c)} | "
                         f"{p} | {c.fixed} / {c.broken} | "
                         f"{'pass' if c.passed else '**FAIL**'}: {c.result} |")
        lines.append("")
    lines += ["| check | value | threshold | result |", "|---|---:|---:|---|"]
    for c in verdict.checks:
        note = f" — {c.detail}" if c.detail else ""
        lines.append(f"| {c.name} | {c.value} | {c.threshold} | "
                     f"{'pass' if c.passed else '**FAIL**'}{note} |")
    return "\n".join(lines) + "\n"


def failures(verdict: Verdict) -> list[str]:
    """One line per failed check, for the CI log."""
    out = [f"gate failed: {c.name} {verdict.metric} against {verdict.against}: "
           f"{_num(c.baseline)} -> {_num(c.now)} ({_delta(c)}, McNemar "
           f"{format_p_value(c.p_value or 0.0)}, {c.fixed} fixed / {c.broken} broken): {c.result}"
           for c in verdict.changes if not c.passed]
    return out + [f"gate failed: {c.name}: {c.value} (threshold {c.threshold})"
                  for c in verdict.checks if not c.passed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.gate",
                                     description=__doc__.strip().splitlines()[0])
    parser.add_argument("--against", default="HEAD", metavar="REV",
                        help="git revision whose committed metrics are the baseline "
                        "(default: HEAD; in CI the target branch)")
    logs.add_flags(parser)
    args = parser.parse_args(argv)
    logs.configure(args.verbosity)
    try:
        params = load()
        log.debug("gate: %s >= %s, against %s", params.gate.metric, params.gate.min,
                  args.against)
        verdict = evaluate(params.gate, args.against, params.models())
    except PipelineError as err:
        log.error("error: %s", err)
        return 2
    print(render(verdict))  # the result (a CI job summary), not a log line: -q keeps it
    for line in failures(verdict):
        log.error(line)
    return 0 if verdict.passed else 1


if __name__ == "__main__":
    sys.exit(main())
