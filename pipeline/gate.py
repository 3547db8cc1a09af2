"""The quality gate: is this run fit to ship, against the run committed at a baseline?

    python -m pipeline.gate [--against REV] [--verbose | -q]   # REV: default HEAD

In the spirit of TFX's "blessing", on the committed metrics and per-image predictions
(reports/predictions/<model>.csv, one row per test image in the same order for every run
on the same data):

- the recommended model (metrics/report.json) must have its evidence (metrics, predictions,
  card) and reach ``gate.min`` on ``gate.metric``;
- every model is compared with its own baseline at REV, and the shipped model with the one
  shipped at REV, *paired on the same test images*: McNemar's exact test on per-image
  correctness (which images it fixed, which it broke) has far more power than comparing
  two intervals. A significant drop (p < ``gate.alpha``) of the recommended model fails;
  of any other model, it fails when larger than ``gate.max_drop`` and is noted otherwise.
  A change with p >= alpha is noise, never called an improvement;
- runs of different classes are not comparable; when the two runs scored different test
  images of the same classes (the data changed), nothing can be paired: the verdict says
  so and falls back to the unpaired rule (the recommended model's drop beyond the top of
  its 95 % Wilson interval must be <= ``gate.max_drop``);
- dvc.lock must match params.yaml, the code and the committed outputs: otherwise the
  committed metrics are not what the committed pipeline produces.

Prints a Markdown verdict (fit for a CI job summary) with every model's baseline, now,
change and p, then the other checks. Exit status: 0 passed; 1 a check failed; 2 the gate
could not run (a malformed file, a missing tool, a bad revision: one ``error:`` line);
3 cannot judge (no sound comparison: the runs are not comparable, the baseline's metrics
are gone, the recommended model has no evidence). Never 0 for what it cannot vouch for.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass, field

import pandas as pd

from pipeline.core import logs
from pipeline.core.errors import PipelineError
from pipeline.core.params import GateParams, load
from pipeline.core.process_setup import verbose
from pipeline.evaluation.stats import format_p_value, mcnemar_exact
from pipeline.gating import revisions
from pipeline.gating.lock import FIX, stale_stages
from pipeline.gating.run_results import REPORT_METRICS, Run, Source, missing_evidence, read_run

log = logging.getLogger(__name__)
PASSED, FAILED, ERROR, CANNOT_JUDGE = 0, 1, 2, 3


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
    note: str = ""  # how the runs were compared, above the table
    changes: list[Change] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    cannot_judge: list[str] = field(default_factory=list)  # why no sound verdict exists
    stale: dict[str, list[str]] = field(default_factory=dict)  # stage: what drifted

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.changes) and all(c.passed for c in self.checks)

    @property
    def status(self) -> int:
        """A failed check is a verdict; else a missing comparison is not a pass."""
        if not self.passed:
            return FAILED
        return CANNOT_JUDGE if self.cannot_judge else PASSED


def lock_status() -> dict[str, list[str]]:
    """The stages dvc.lock no longer describes (pipeline.core.lock)."""
    return stale_stages()


def workspace_run(models: list[str], metric: str) -> Run:
    run = read_run(Source(), models, metric)
    if run is None:
        raise PipelineError(f"{REPORT_METRICS}: not found; run `dvc repro` first")
    return run


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


def evaluate(gate: GateParams, against: str, models: list[str]) -> Verdict:
    sha = revisions.commit(against)  # before reading anything: a bad REV is an error
    now = workspace_run(models, gate.metric)
    verdict = Verdict(against, gate.metric)
    model = now.recommended
    lacking = missing_evidence(now, Source())
    if model not in models:
        lacking.append("an entry in params.yaml")
    said = float(now.report["accuracy"])
    if lacking:
        verdict.cannot_judge.append(
            f"{REPORT_METRICS} recommends {model!r}, which has no {', '.join(lacking)}: the "
            "report does not describe this run's models; run `dvc repro`")
    elif abs(said - float(now.predictions[model]["correct"].mean())) > 1e-4:
        verdict.cannot_judge.append(
            f"{REPORT_METRICS} gives {model} an accuracy of {said:.4f}, its predictions "
            f"(reports/predictions/{model}.csv) {now.predictions[model]['correct'].mean():.4f}: "
            "the report does not describe this run's models; run `dvc repro`")
    else:
        value = (float(now.report["accuracy"]) if gate.metric == "accuracy"
                 else now.value(model, gate.metric))
        if value is None:
            raise PipelineError(f"metrics/evaluate/{model}.json has no {gate.metric} "
                                "(gate.metric)")
        verdict.checks.append(Check(f"{model} {gate.metric} >= min", f"{value:.4f}",
                                    f"{gate.min:.4f}", value >= gate.min))
        compare(verdict, now, sha, gate, models)
    verdict.stale = lock_status()
    verdict.checks.append(Check(
        "dvc.lock matches params.yaml, the code and the outputs",
        "in sync" if not verdict.stale else f"{len(verdict.stale)} stale stage(s)", "in sync",
        not verdict.stale, ", ".join(verdict.stale)))
    return verdict


def compare(verdict: Verdict, now: Run, sha: str, gate: GateParams, models: list[str]) -> None:
    """The workspace's run against the one committed at ``sha``, into ``verdict``."""
    against = verdict.against
    base_source = Source(sha, against)
    base = read_run(base_source, base_source.models(), gate.metric)
    if base is None:
        had = revisions.last_commit_with(sha, REPORT_METRICS)
        if had is not None:
            verdict.cannot_judge.append(
                f"`{against}` holds no {REPORT_METRICS}, though commit {had[:7]} had it: "
                f"the baseline's metrics are gone; compare with a revision that has them "
                f"(--against {had[:7]})")
        elif revisions.shallow():
            verdict.cannot_judge.append(
                f"`{against}` holds no {REPORT_METRICS} and this clone is shallow, so a first "
                "run cannot be told from lost metrics (`git fetch --unshallow`)")
        else:
            verdict.note = (f"No baseline: no commit up to `{against}` has {REPORT_METRICS} "
                            "(a first run), so only the floor and dvc.lock are checked.")
        return
    ours, theirs = now.classes(), base.classes()
    if theirs is None:
        verdict.cannot_judge.append(
            f"`{against}` has {REPORT_METRICS} but no model card or predictions, so its "
            "classes are unknown and the runs cannot be compared")
        return
    if ours != theirs:
        verdict.cannot_judge.append(
            f"not comparable: the runs classify different classes: `{against}` has "
            f"{len(theirs)} ({', '.join(theirs)}), the workspace {len(ours)} "
            f"({', '.join(ours)})")
        return
    if (why := pairing(now, base, against)) is not None:
        verdict.note = (f"Not paired: {why}. The same {len(ours)} classes, so the unpaired "
                        "rule applies: each run's recommended model on its own test images.")
        verdict.checks.append(unpaired_check(now, base, gate, against))
        return
    n = len(next(iter(now.predictions.values())))
    verdict.note = (
        f"Each model against its own baseline at `{against}`, paired on the same {n} test "
        f"images (McNemar's exact test on per-image correctness, alpha = {gate.alpha:g}): "
        f"a significant drop of the recommended model (★) fails; of another model, when "
        f"larger than max_drop ({gate.max_drop:g}).")
    verdict.changes = compare_models(now, base, gate, models, against)


def _num(x: float | None) -> str:
    return "–" if x is None else f"{x:.4f}"


def _delta(c: Change) -> str:
    return "–" if c.baseline is None or c.now is None else f"{c.now - c.baseline:+.4f}"


STATUS = {PASSED: "PASSED", FAILED: "FAILED", CANNOT_JUDGE: "CANNOT JUDGE"}


def render(verdict: Verdict) -> str:
    lines = [f"## Quality gate: {STATUS[verdict.status]} (against `{verdict.against}`)", ""]
    if verdict.cannot_judge:
        lines += [*[f"**Cannot judge:** {why}." for why in verdict.cannot_judge], ""]
    if verdict.note:
        lines += [verdict.note, ""]
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
    if verdict.stale:
        lines += ["", f"Stale stages ({len(verdict.stale)}, from `dvc status`): {FIX}.", ""]
        lines += [f"- {stage}: {'; '.join(why)}" for stage, why in verdict.stale.items()]
    return "\n".join(lines) + "\n"


def failures(verdict: Verdict) -> list[str]:
    """One line per failed check and per reason it cannot judge, for the CI log."""
    out = [f"gate failed: {c.name} {verdict.metric} against {verdict.against}: "
           f"{_num(c.baseline)} -> {_num(c.now)} ({_delta(c)}, McNemar "
           f"{format_p_value(c.p_value or 0.0)}, {c.fixed} fixed / {c.broken} broken): {c.result}"
           for c in verdict.changes if not c.passed]
    out += [f"gate failed: {c.name}: {c.value} (threshold {c.threshold})"
            + (f": {c.detail}" if c.detail else "") for c in verdict.checks if not c.passed]
    if verdict.stale:
        out.append(f"gate: {FIX}")
    return out + [f"cannot judge: {why}" for why in verdict.cannot_judge]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.gate", description=__doc__.strip().splitlines()[0],
        epilog="exit status: 0 passed, 1 a check failed, 2 error (the gate could not run), "
        "3 cannot judge (docs/report-and-gate.md)")
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
        log.error("error: %s", " ".join(str(err).split()))
        return ERROR
    except Exception as err:  # nobody foresaw it: still one line, never a PASS
        if verbose():
            raise
        from pipeline.core.stage import unexpected

        log.error("%s", unexpected(err, "gate"))
        return ERROR
    print(render(verdict))  # the result (a CI job summary), not a log line: -q keeps it
    for line in failures(verdict):
        log.error(line)
    return verdict.status


if __name__ == "__main__":
    sys.exit(main())
