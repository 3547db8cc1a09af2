"""The quality gate against the committed run: floors, paired per-model changes, drift."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import c_locale, repo_params, write_params

from pipeline import gate
from pipeline.evaluation.stats import wilson_interval

N = 60
gate_lock_status = gate.lock_status  # the real one: the fixture replaces it
CLASSES = ["circle", "square", "star", "stripes", "triangle"]
# The committed run (HEAD): wrn recommended at 0.50, head and resnet50 near a third.
BASELINE = {"head": set(range(20, 40)), "resnet50": set(range(10, 32)), "wrn": set(range(30))}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _write_run(repo: Path, correct: dict[str, set[int]], recommended: str,
               images: list[str] | None = None, classes: list[str] = CLASSES) -> None:
    """metrics/report.json, metrics/evaluate/*.json, reports/predictions/*.csv and the cards
    models/*.json of a run whose model M got exactly the test images ``correct[M]`` right."""
    k = len(classes)
    images = images or [f"{classes[i % k]}/img{i:03d}.jpg" for i in range(N)]
    for folder in ("metrics/evaluate", "reports/predictions", "models"):
        (repo / folder).mkdir(parents=True, exist_ok=True)
    for model, right in correct.items():
        labels = [classes[i % k] for i in range(len(images))]
        predicted = [c if i in right else classes[(i + 1) % k] for i, c in enumerate(labels)]
        (repo / "models" / f"{model}.json").write_text(json.dumps({"name": model,
                                                                   "classes": classes}))
        pd.DataFrame({"path": images, "label": labels, "predicted": predicted,
                      "confidence": 0.5, "correct": [i in right for i in range(len(images))]}
                     ).to_csv(repo / "reports" / "predictions" / f"{model}.csv", index=False)
        accuracy = len(right) / len(images)
        (repo / "metrics" / "evaluate" / f"{model}.json").write_text(json.dumps(
            {"accuracy": round(accuracy, 4), "macro_f1": round(accuracy - 0.01, 4)}))
    hits = len(correct[recommended])
    low, high = wilson_interval(hits, len(images))
    (repo / "metrics" / "report.json").write_text(json.dumps({
        "recommended": recommended, "accuracy": round(hits / len(images), 4),
        "accuracy_low": round(low, 4), "accuracy_high": round(high, 4)}))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository whose HEAD holds the baseline run; the workspace is the same run."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {"gate.metric": "accuracy", "gate.min": 0.3, "gate.max_drop": 0.05,
                            "gate.alpha": 0.05})
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")
    _write_run(tmp_path, BASELINE, "wrn")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "baseline")
    monkeypatch.setattr(gate, "lock_status", lambda: {})  # no DVC project here
    return tmp_path


def _gate_params(repo: Path, **changes: float) -> None:
    write_params(repo, {"gate.metric": "accuracy", "gate.min": 0.3, "gate.max_drop": 0.05,
                        "gate.alpha": 0.05} | {f"gate.{k}": v for k, v in changes.items()})


def test_the_committed_run_passes_with_every_model_listed(repo, capsys):
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "## Quality gate: PASSED (against `HEAD`)" in out
    assert "paired on the same 60 test images" in out
    for model, accuracy in (("head", "0.3333"), ("resnet50", "0.3667"), ("wrn ★", "0.5000")):
        assert f"| {model} | {accuracy} | {accuracy} | +0.0000 | 1 | 0 / 0 | pass: no change" in out


def test_models_left_at_initialisation_fail_naming_the_wrn_drop(repo, capsys):
    # The run (every learning rate ~1e-12): the recommendation moves from wrn (0.50)
    # to head (0.33), wrn itself falls to 0.18. The unpaired rule let this through.
    _write_run(repo, {"head": set(range(20, 40)), "resnet50": set(range(10, 30)),
                      "wrn": set(range(9)) | {30, 31}}, "head")
    assert gate.main([]) == 1
    captured = capsys.readouterr()
    assert "## Quality gate: FAILED" in captured.out
    assert ("| wrn | 0.5000 | 0.1833 | -0.3167 | < 0.001 | 2 / 21 | **FAIL**: significant drop "
            "beyond max_drop 0.05 |") in captured.out
    # The shipped model against the one shipped before: tied on these images, so not a failure.
    assert "| shipped: head ★ vs wrn (shipped at `HEAD`) | 0.5000 | 0.3333 | -0.1667 | 0.099 " \
           "| 10 / 20 | pass: within noise" in captured.out
    failed = [line for line in captured.err.splitlines() if line.startswith("gate failed")]
    assert failed == ["gate failed: wrn accuracy against HEAD: 0.5000 -> 0.1833 (-0.3167, "
                      "McNemar p < 0.001, 2 fixed / 21 broken): significant drop beyond "
                      "max_drop 0.05"]


def test_a_change_within_noise_passes_and_is_not_called_an_improvement(repo, capsys):
    _write_run(repo, BASELINE | {"wrn": set(range(1, 34))}, "wrn")  # +4 fixed, 1 broken
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "| wrn ★ | 0.5000 | 0.5500 | +0.0500 | 0.38 | 4 / 1 | pass: within noise" in out
    assert "improve" not in out


def test_a_significant_improvement_is_called_one(repo, capsys):
    _write_run(repo, BASELINE | {"wrn": set(range(42))}, "wrn")  # 12 fixed, none broken
    assert gate.main([]) == 0
    assert "12 / 0 | pass: significant improvement" in capsys.readouterr().out


def test_changed_test_images_fall_back_to_the_unpaired_rule_and_say_so(repo, capsys):
    images = [f"{CLASSES[i % 5]}/new{i:03d}.jpg" for i in range(58)]
    _write_run(repo, {m: {i for i in right if i < 58} for m, right in BASELINE.items()}, "wrn",
               images)
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "Not paired: the test images differ between `HEAD` and the workspace (head: 60 " \
           "then, 58 now, 0 in common): the data changed" in out
    assert "The same 5 classes, so the unpaired rule applies: each run's recommended model " \
        "on its own test images" in out
    assert "| unpaired drop of accuracy against HEAD (wrn 0.5000) |" in out
    assert "McNemar p" not in out  # no per-model table: nothing was paired


def test_one_models_changed_test_images_are_enough_to_fall_back(repo, capsys):
    """head and wrn scored the same images as at HEAD, resnet50 two others: no image of any
    model is paired (a model-by-model table would compare resnet50 on other images)."""
    table = repo / "reports" / "predictions" / "resnet50.csv"
    rows = pd.read_csv(table)
    rows.loc[:1, "path"] = ["circle/other0.jpg", "square/other1.jpg"]
    rows.to_csv(table, index=False)
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "Not paired: the test images differ between `HEAD` and the workspace (resnet50: 60 " \
           "then, 60 now, 58 in common): the data changed, so no image can be paired." in out
    assert "| unpaired drop of accuracy against HEAD (wrn 0.5000) | -0.1226 | <= 0.0500 |" in out
    assert "McNemar p" not in out


def test_the_unpaired_fallback_still_refuses_a_drop_beyond_the_interval(repo, capsys):
    images = [f"{CLASSES[i % 5]}/new{i:03d}.jpg" for i in range(N)]
    _write_run(repo, BASELINE | {"wrn": set(range(12))}, "wrn", images)  # 0.20: top 0.32
    assert gate.main([]) == 1
    assert "gate failed: unpaired drop of accuracy against HEAD (wrn 0.5000)" in \
        capsys.readouterr().err


def test_the_unpaired_rule_line_by_line_for_accuracy_and_macro_f1(repo, capsys):
    """Not paired: accuracy's drop counts only beyond the top of its 95 % interval; macro-F1
    has no interval, so its whole drop counts; a run without the metric is not recorded."""
    images = [f"{CLASSES[i % 5]}/new{i:03d}.jpg" for i in range(N)]
    _write_run(repo, BASELINE | {"wrn": set(range(27))}, "wrn", images)  # 0.45 now
    assert gate.main([]) == 0
    assert ("| unpaired drop of accuracy against HEAD (wrn 0.5000) | -0.0751 | <= 0.0500 | "
            "pass — baseline 0.5000 minus the top of its 95 % interval (0.5751); change "
            "-0.0500 (within the 95 % interval: not a significant change) |"
            ) in capsys.readouterr().out
    _gate_params(repo, metric="macro_f1", min=0.3)
    assert gate.main([]) == 0  # 0.49 -> 0.44: a drop of 0.05 counts whole, at max_drop
    assert ("| unpaired drop of macro_f1 against HEAD (wrn 0.4900) | +0.0500 | <= 0.0500 | "
            "pass — baseline 0.4900 minus it (0.4400); change -0.0500 |"
            ) in capsys.readouterr().out
    _gate_params(repo, metric="macro_f1", min=0.3, max_drop=0.04)
    assert gate.main([]) == 1
    out = capsys.readouterr().out
    assert ("| unpaired drop of macro_f1 against HEAD (wrn 0.4900) | +0.0500 | <= 0.0400 | "
            "**FAIL** — baseline 0.4900 minus it (0.4400); change -0.0500 |") in out
    metrics = repo / "metrics" / "evaluate" / "wrn.json"
    now = metrics.read_text()
    metrics.write_text(json.dumps({"accuracy": 0.5}))  # the baseline's wrn without macro_f1
    _git(repo, "commit", "-qm", "a baseline without macro_f1", "--", "metrics/evaluate/wrn.json")
    metrics.write_text(now)
    assert gate.main([]) == 0
    assert ("| drop of macro_f1 against HEAD | not recorded | <= 0.0400 | pass — no macro_f1 "
            "in one of the runs |") in capsys.readouterr().out


def test_a_significant_regression_of_the_recommended_model_fails_within_max_drop(repo, capsys):
    _gate_params(repo, max_drop=0.5)
    _write_run(repo, BASELINE | {"wrn": set(range(9, 30))}, "wrn")  # 9 broken: p = 0.0039
    assert gate.main([]) == 1
    captured = capsys.readouterr()
    assert "| wrn ★ | 0.5000 | 0.3500 | -0.1500 | 0.0039 | 0 / 9 | **FAIL**: significant " \
           "regression of the recommended model |" in captured.out
    assert "gate failed: wrn ★ accuracy against HEAD" in captured.err


@pytest.mark.parametrize(("max_drop", "code", "result"), [
    (0.25, 0, "pass: note: significant drop, within max_drop 0.25 (not the recommended model)"),
    (0.1, 1, "**FAIL**: significant drop beyond max_drop 0.1"),
])
def test_a_significant_drop_of_another_model_fails_only_beyond_max_drop(
        repo, capsys, max_drop, code, result):
    _gate_params(repo, max_drop=max_drop)
    _write_run(repo, BASELINE | {"resnet50": set(range(20, 32))}, "wrn")  # 10 broken, -0.1667
    assert gate.main([]) == code
    assert f"| resnet50 | 0.3667 | 0.2000 | -0.1667 | 0.002 | 0 / 10 | {result} |" in \
        capsys.readouterr().out


def test_an_unpaired_gain_within_the_interval_is_not_called_significant(repo, capsys):
    """0.50 -> 0.55 on other test images: the baseline lies inside today's interval."""
    images = [f"{CLASSES[i % 5]}/new{i:03d}.jpg" for i in range(N)]
    _write_run(repo, BASELINE | {"wrn": set(range(33))}, "wrn", images)
    assert gate.main([]) == 0
    assert ("change +0.0500 (within the 95 % interval: not a significant change) |"
            ) in capsys.readouterr().out
    _write_run(repo, BASELINE | {"wrn": set(range(48))}, "wrn", images)  # 0.80: low 0.68
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "change +0.3000 |" in out and "not a significant change" not in out


def _hand_interval(repo: Path, low: float, high: float) -> None:
    """The workspace's report with the recommended model's interval set by hand."""
    report = json.loads((repo / "metrics" / "report.json").read_text())
    report |= {"accuracy_low": low, "accuracy_high": high}
    (repo / "metrics" / "report.json").write_text(json.dumps(report))


def test_the_unpaired_rule_at_its_edges(repo, capsys):
    """The baseline exactly at either end of today's interval is within it; a drop beyond
    the top exactly equal to max_drop passes; macro-F1 (no interval) is never 'within'."""
    images = [f"{CLASSES[i % 5]}/new{i:03d}.jpg" for i in range(N)]
    _write_run(repo, BASELINE | {"wrn": set(range(27))}, "wrn", images)  # 0.45, baseline 0.5
    for low, high in ((0.5, 0.75), (0.25, 0.5)):
        _hand_interval(repo, low, high)
        assert gate.main([]) == 0
        assert "(within the 95 % interval: not a significant change) |" in \
            capsys.readouterr().out, (low, high)
    _hand_interval(repo, 0.125, 0.25)  # 0.5 - 0.25: a drop of exactly max_drop
    _gate_params(repo, max_drop=0.25)
    assert gate.main([]) == 0
    assert "| +0.2500 | <= 0.2500 | pass — baseline 0.5000 minus the top" in \
        capsys.readouterr().out
    _write_run(repo, BASELINE, "wrn", images)  # macro-F1 0.49 then and now
    _gate_params(repo, metric="macro_f1", min=0.3)
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "change +0.0000 |" in out and "within the 95 % interval" not in out


def test_a_changed_recommendation_is_held_to_the_model_shipped_before(repo, capsys):
    """The run now ships head where wrn shipped: head, 6 images worse than wrn was (McNemar
    p = 0.031), fails as the recommended model, whatever max_drop allows other models."""
    _gate_params(repo, max_drop=0.2)
    _write_run(repo, BASELINE | {"head": set(range(24))}, "head")
    assert gate.main([]) == 1
    out = capsys.readouterr().out
    assert ("| shipped: head ★ vs wrn (shipped at `HEAD`) | 0.5000 | 0.4000 | -0.1000 | 0.031 "
            "| 0 / 6 | **FAIL**: significant regression of the recommended model |") in out


def test_a_paired_change_at_its_edges(repo):
    """p exactly alpha is noise; a significant drop of another model exactly at max_drop is
    a note; a model whose metric the baseline lacks cannot drop."""
    import numpy as np

    from pipeline.core.params import GateParams

    base = np.array([True] * 8 + [False] * 8)
    now = base.copy()
    now[:5] = False  # 5 broken, none fixed: p = 2 x 0.5**5 = 0.0625
    edge = GateParams(metric="accuracy", min=0.1, max_drop=0.25, alpha=0.0625)
    assert gate._paired("m", now, base, 0.5, 0.2, edge, False).result.startswith("within noise")
    tight = GateParams(metric="accuracy", min=0.1, max_drop=0.25, alpha=0.1)
    change = gate._paired("m", now, base, 0.5, 0.25, tight, False)
    assert change.passed and change.result.startswith("note: significant drop, within")
    change = gate._paired("m", now, base, None, 0.25, tight.model_copy(update={"max_drop": 0.0}),
                          False)
    assert change.passed and change.result.startswith("note: significant drop, within")


def test_the_verdict_page_and_its_ci_lines_whole():
    """What a CI job summary shows, every section at once, and the lines of its log."""
    verdict = gate.Verdict("main", "accuracy", "Paired on the same 60 test images.")
    verdict.cannot_judge.append("the baseline has no card")
    verdict.changes = [
        gate.Change("wrn ★", 0.5, 0.3, 0.0, 0, 12, "significant regression", False),
        gate.Change("head", 0.4, 0.3, 0.0213, 1, 7, "significant drop", False),
        gate.Change("bit", None, 0.4, None, result="new: no baseline")]
    verdict.checks = [gate.Check("recommended model's accuracy", "0.2000", ">= 0.3000", False),
                      gate.Check("dvc.lock in sync", "1 stale", "in sync", False, "see below")]
    verdict.stale = {"train_head": ["params head in params.yaml"]}
    assert gate.render(verdict) == (
        "## Quality gate: FAILED (against `main`)\n"
        "\n"
        "**Cannot judge:** the baseline has no card.\n"
        "\n"
        "Paired on the same 60 test images.\n"
        "\n"
        "| model | baseline accuracy | now | change | McNemar p | fixed / broken | result |\n"
        "|---|---:|---:|---:|---:|---:|---|\n"
        "| wrn ★ | 0.5000 | 0.3000 | -0.2000 | < 0.001 | 0 / 12 | **FAIL**: significant "
        "regression |\n"
        "| head | 0.4000 | 0.3000 | -0.1000 | 0.021 | 1 / 7 | **FAIL**: significant drop |\n"
        "| bit | – | 0.4000 | – | – | 0 / 0 | pass: new: no baseline |\n"
        "\n"
        "| check | value | threshold | result |\n"
        "|---|---:|---:|---|\n"
        "| recommended model's accuracy | 0.2000 | >= 0.3000 | **FAIL** |\n"
        "| dvc.lock in sync | 1 stale | in sync | **FAIL** — see below |\n"
        "\n"
        f"Stale stages (1, from `dvc status`): {gate.FIX}.\n"
        "\n"
        "- train_head: params head in params.yaml\n")
    assert gate.failures(verdict) == [
        "gate failed: wrn ★ accuracy against main: 0.5000 -> 0.3000 (-0.2000, McNemar "
        "p < 0.001, 0 fixed / 12 broken): significant regression",
        "gate failed: head accuracy against main: 0.4000 -> 0.3000 (-0.1000, McNemar "
        "p = 0.021, 1 fixed / 7 broken): significant drop",
        "gate failed: recommended model's accuracy: 0.2000 (threshold >= 0.3000)",
        "gate failed: dvc.lock in sync: 1 stale (threshold in sync): see below",
        f"gate: {gate.FIX}",
        "cannot judge: the baseline has no card"]


def test_the_same_images_relabelled_are_not_paired(repo, capsys):
    """A label fixed in the data: the same files, another answer key, so no image pairs."""
    for csv in (repo / "reports" / "predictions").glob("*.csv"):
        table = pd.read_csv(csv)
        table.loc[0, "label"] = "square" if table.loc[0, "label"] != "square" else "star"
        table.to_csv(csv, index=False)
    assert gate.main([]) == 0
    assert "Not paired: the test images differ between `HEAD` and the workspace" in \
        capsys.readouterr().out


def test_an_older_baseline_without_cards_or_accuracy_still_compares(repo, capsys):
    """A baseline from before the cards (classes from its predictions' labels), or whose
    recommended model alone lacks one, and whose metrics lack accuracy (taken from its
    predictions), is compared all the same."""
    _git(repo, "rm", "-q", "--cached", "models/wrn.json")
    head = json.loads((repo / "metrics/evaluate/head.json").read_text())
    (repo / "metrics/evaluate/head.json").write_text(json.dumps({"macro_f1": 0.32}))
    _git(repo, "commit", "-qam", "no card for wrn, no accuracy for head")
    (repo / "metrics/evaluate/head.json").write_text(json.dumps(head))
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "| head | 0.3333 | 0.3333 |" in out
    _git(repo, "rm", "-q", "--cached", "models/head.json", "models/resnet50.json")
    _git(repo, "commit", "-qm", "no card at all")
    assert gate.main([]) == 0
    assert "paired on the same 60 test images" in capsys.readouterr().out


def test_scores_of_exactly_0_and_1_are_scores(repo, capsys):
    for model, score in (("head", 0.0), ("resnet50", 1.0)):
        path = repo / "metrics" / "evaluate" / f"{model}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | {"accuracy": score}))
    assert gate.main([]) == 0
    assert "| head | 0.3333 | 0.0000 |" in capsys.readouterr().out


def test_a_baseline_file_name_that_is_not_utf8_is_skipped_not_fatal(repo, capsys):
    """git keeps bytes for names (raw, with core.quotePath off, as many set it): a stray
    file whose name is not UTF-8 beside the baseline's evaluations is no model, and no
    reason to stop."""
    _git(repo, "config", "core.quotePath", "false")
    stray = os.fsencode(repo / "metrics" / "evaluate") + b"/\xff.json"
    try:
        with open(stray, "wb") as out:
            out.write(b"{}")
    except OSError:
        pytest.skip("this filesystem refuses names that are not UTF-8")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a stray file")
    os.remove(stray)
    assert gate.main([]) == 0
    assert "PASSED" in capsys.readouterr().out


def test_without_committed_predictions_the_unpaired_rule_applies(repo, capsys):
    _git(repo, "rm", "-rq", "--cached", "reports/predictions")
    _git(repo, "commit", "-qm", "no predictions")
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "no per-image predictions committed at `HEAD`" in out
    assert "(within the 95 % interval: not a significant change)" in out


def test_a_new_model_has_no_baseline_and_does_not_fail(repo, capsys):
    write_params(repo, {"gate.metric": "accuracy", "gate.min": 0.3, "gate.max_drop": 0.05,
                        "gate.alpha": 0.05, "scratch.wrn2": repo_params()["scratch"]["wrn"]})
    _write_run(repo, BASELINE | {"wrn2": set(range(5))}, "wrn")
    assert gate.main([]) == 0
    assert "| wrn2 | – | 0.0833 | – | – | 0 / 0 | pass: new: no baseline |" in \
        capsys.readouterr().out


def test_below_the_floor_fails(repo, capsys):
    _gate_params(repo, min=0.9)
    assert gate.main([]) == 1
    assert "gate failed: wrn accuracy >= min: 0.5000 (threshold 0.9000)" in capsys.readouterr().err
    _gate_params(repo, min=0.5)  # exactly at the floor: it holds
    assert gate.main([]) == 0
    assert "| wrn accuracy >= min | 0.5000 | 0.5000 | pass |" in capsys.readouterr().out


def test_quiet_keeps_the_verdict_and_the_failure_lines(repo, capsys):
    _gate_params(repo, min=0.9)
    assert gate.main(["-q"]) == 1
    out, err = capsys.readouterr()
    assert "## Quality gate: FAILED" in out
    assert "gate failed: wrn accuracy >= min: 0.5000 (threshold 0.9000)" in err


def test_macro_f1_is_the_floor_and_the_change_shown(repo, capsys):
    write_params(repo, {"gate.metric": "macro_f1", "gate.min": 0.3, "gate.max_drop": 0.05,
                        "gate.alpha": 0.05})
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "| wrn macro_f1 >= min | 0.4900 |" in out
    assert "| model | baseline macro_f1 |" in out


def test_no_workspace_metrics_exit_2(repo, capsys):
    (repo / "metrics" / "report.json").unlink()
    assert gate.main([]) == 2
    assert "run `dvc repro` first" in capsys.readouterr().err


# --------------------------------------------------------------- what it cannot vouch for


def test_a_recommended_model_without_evidence_cannot_be_judged(repo, capsys):
    report = json.loads((repo / "metrics/report.json").read_text())
    (repo / "metrics/report.json").write_text(json.dumps(report | {"recommended": "ghost"}))
    assert gate.main([]) == gate.CANNOT_JUDGE
    captured = capsys.readouterr()
    assert "## Quality gate: CANNOT JUDGE" in captured.out
    assert ("cannot judge: metrics/report.json recommends 'ghost', which has no "
            "metrics/evaluate/ghost.json, reports/predictions/ghost.csv, models/ghost.json, an "
            "entry in params.yaml: the report does not describe this run's models; run "
            "`dvc repro`\n") in captured.err


def test_a_report_whose_accuracy_its_predictions_deny_cannot_be_judged(repo, capsys):
    # The first false pass, even with dvc.lock re-committed over the edit.
    report = json.loads((repo / "metrics/report.json").read_text())
    (repo / "metrics/report.json").write_text(json.dumps(report | {"accuracy": 0.7}))
    assert gate.main([]) == gate.CANNOT_JUDGE
    assert ("cannot judge: metrics/report.json gives wrn an accuracy of 0.7000, its "
            "predictions (reports/predictions/wrn.csv) 0.5000: the report does not describe "
            "this run's models; run `dvc repro`\n") in capsys.readouterr().err


def test_the_report_may_round_its_accuracy_but_no_more(repo, capsys):
    """The report gives 4 decimals: one unit of the last is rounding, not a changed run
    (here a model that got no test image right, reported as 0.0001)."""
    _write_run(repo, BASELINE | {"wrn": set()}, "wrn")
    report = json.loads((repo / "metrics/report.json").read_text())
    (repo / "metrics/report.json").write_text(json.dumps(report | {"accuracy": 0.0001}))
    assert gate.main([]) == gate.FAILED  # below the floor, judged
    assert "cannot judge" not in capsys.readouterr().err


def test_the_floor_is_the_accuracy_the_predictions_confirm(repo, capsys):
    """The floor reads the report's accuracy, checked against the predictions: an
    evaluation file edited by hand does not lift a run over it."""
    _gate_params(repo, min=0.9)
    (repo / "metrics/evaluate/wrn.json").write_text('{"accuracy": 0.99, "macro_f1": 0.99}')
    assert gate.main([]) == gate.FAILED
    assert "| wrn accuracy >= min | 0.5000 | 0.9000 | **FAIL** |" in capsys.readouterr().out


def test_a_gate_metric_the_evaluation_lacks_is_one_error_line(repo, capsys):
    _gate_params(repo, metric="macro_f1")
    (repo / "metrics/evaluate/wrn.json").write_text('{"accuracy": 0.5}')
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == ("error: metrics/evaluate/wrn.json has no macro_f1 "
                                       "(gate.metric)\n")


def test_no_git_on_path_is_one_error_line(repo, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "no-git"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == ("error: git is not on PATH: it reads the committed "
                                       "baseline\n")


@pytest.mark.parametrize("missing", ["metrics/evaluate/wrn.json", "reports/predictions/wrn.csv",
                                     "models/wrn.json"])
def test_the_recommended_model_needs_each_of_its_files(repo, capsys, missing):
    (repo / missing).unlink()
    assert gate.main([]) == gate.CANNOT_JUDGE
    assert f"recommends 'wrn', which has no {missing}:" in capsys.readouterr().err


@pytest.mark.parametrize("rev", ["no-such-branch", "HEAD~5"])
def test_a_revision_that_does_not_exist_is_an_error_naming_it(repo, capsys, rev):
    assert gate.main(["--against", rev]) == gate.ERROR
    err = capsys.readouterr().err
    assert err.strip() == (f"error: --against {rev!r}: no such revision in this repository "
                           "(mistyped? in CI, was it fetched?)")


@pytest.mark.parametrize("rev", ["--output=F", "-p"])
def test_against_takes_revisions_never_options(repo, capsys, rev):
    before = sorted(p.name for p in repo.iterdir())
    assert gate.main([f"--against={rev}"]) == gate.ERROR
    assert f"error: --against {rev!r}: a git revision" in capsys.readouterr().err
    assert sorted(p.name for p in repo.iterdir()) == before  # git wrote no F:metrics/...


def test_a_revision_like_an_option_is_refused_before_git_sees_it(repo, capsys, monkeypatch):
    calls = []
    monkeypatch.setattr("pipeline.gating.revisions._git", lambda *a: calls.append(a))
    assert gate.main(["--against=--output=F"]) == gate.ERROR
    assert calls == []


def test_a_baseline_whose_metrics_were_removed_cannot_be_judged(repo, capsys):
    _git(repo, "rm", "-q", "--cached", "metrics/report.json")
    _git(repo, "commit", "-qm", "drop it")
    had = subprocess.run(["git", "rev-parse", "--short=7", "HEAD~1"], cwd=repo, text=True,
                         capture_output=True).stdout.strip()
    assert gate.main([]) == gate.CANNOT_JUDGE
    captured = capsys.readouterr()
    assert (f"cannot judge: `HEAD` holds no metrics/report.json, though commit {had} had it: "
            f"the baseline's metrics are gone; compare with a revision that has them "
            f"(--against {had})") in captured.err
    assert "PASSED" not in captured.out


def test_a_revision_without_metrics_names_the_last_commit_before_it_that_had_them(repo,
                                                                                 capsys):
    """--against an old revision: the commit it points to is one up to that revision, never
    a later one that put the metrics back."""
    def short(rev: str) -> str:
        return subprocess.run(["git", "rev-parse", "--short=7", rev], cwd=repo, text=True,
                              capture_output=True).stdout.strip()

    _write_run(repo, BASELINE | {"wrn": set(range(31))}, "wrn")
    _git(repo, "commit", "-qam", "a second run")
    second = short("HEAD")
    _git(repo, "rm", "-q", "--cached", "metrics/report.json")
    _git(repo, "commit", "-qm", "drop it")
    dropped = short("HEAD")
    _git(repo, "add", "metrics/report.json")
    _git(repo, "commit", "-qm", "put it back")
    assert gate.main([f"--against={dropped}"]) == gate.CANNOT_JUDGE
    assert (f"`{dropped}` holds no metrics/report.json, though commit {second} had it"
            ) in capsys.readouterr().err


def test_a_first_run_has_no_baseline_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    _gate_params(tmp_path)
    for args in (["init", "-q"], ["config", "user.email", "t@example.invalid"],
                 ["config", "user.name", "t"], ["add", "params.yaml"],
                 ["commit", "-qm", "the project, before any run"]):
        _git(tmp_path, *args)
    _write_run(tmp_path, BASELINE, "wrn")
    monkeypatch.setattr(gate, "lock_status", lambda: {})
    assert gate.main([]) == gate.PASSED
    assert ("No baseline: no commit up to `HEAD` has metrics/report.json (a first run), so "
            "only the floor and dvc.lock are checked.") in capsys.readouterr().out


def test_a_shallow_clone_cannot_tell_a_first_run_from_lost_metrics(repo, tmp_path, monkeypatch,
                                                                   capsys):
    _git(repo, "rm", "-q", "--cached", "metrics/report.json")
    _git(repo, "commit", "-qm", "drop it")
    clone = tmp_path / "shallow"
    _git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    _write_run(clone, BASELINE, "wrn")
    monkeypatch.chdir(clone)
    assert gate.main([]) == gate.CANNOT_JUDGE
    assert capsys.readouterr().err.endswith(
        "cannot judge: `HEAD` holds no metrics/report.json and this clone is shallow, so a "
        "first run cannot be told from lost metrics (`git fetch --unshallow`)\n")


def test_a_baseline_with_metrics_but_no_cards_nor_predictions_cannot_be_judged(repo, capsys):
    _git(repo, "rm", "-q", "-r", "--cached", "models", "reports/predictions")
    _git(repo, "commit", "-qm", "metrics alone")
    assert gate.main([]) == gate.CANNOT_JUDGE
    assert ("cannot judge: `HEAD` has metrics/report.json but no model card or predictions, "
            "so its classes are unknown and the runs cannot be compared") in \
        capsys.readouterr().err


def test_a_baseline_file_that_is_not_utf8_or_a_metric_out_of_range_is_an_error(repo, capsys):
    """The baseline is checked as the workspace is: nothing unreadable is compared."""
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True,
                         capture_output=True).stdout.strip()
    good = (repo / "metrics/evaluate/head.json").read_bytes()
    (repo / "metrics/evaluate/head.json").write_bytes(b'{"accuracy": 1.5}')
    _git(repo, "commit", "-qam", "an accuracy of 1.5")
    (repo / "metrics/evaluate/head.json").write_bytes(good)
    assert gate.main([f"--against={sha}"]) == 0
    capsys.readouterr()
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err.startswith("error: HEAD:metrics/evaluate/head.json: accuracy")
    (repo / "metrics/evaluate/head.json").write_bytes(b'{"accuracy": 0.33, "note": "\xe9t\xe9"}')
    _git(repo, "commit", "-qam", "latin-1")
    (repo / "metrics/evaluate/head.json").write_bytes(good)
    short = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=repo, text=True,
                           capture_output=True).stdout.strip()
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == (f"error: {short}:metrics/evaluate/head.json: not UTF-8 "
                                       "text\n")


def test_runs_of_other_classes_are_not_comparable_naming_both_lists(repo, capsys):
    # The ants/bees run against the committed 5-class run.
    two = ["ants", "bees"]
    _write_run(repo, {m: set(range(40)) for m in BASELINE}, "wrn",
               [f"{two[i % 2]}/{i}.jpg" for i in range(N)], classes=two)
    assert gate.main([]) == gate.CANNOT_JUDGE
    captured = capsys.readouterr()
    assert ("cannot judge: not comparable: the runs classify different classes: `HEAD` has 5 "
            "(circle, square, star, stripes, triangle), the workspace 2 (ants, bees)") \
        in captured.err
    assert "unpaired" not in captured.out and "PASSED" not in captured.out


def test_a_failed_check_is_a_failure_even_when_the_comparison_cannot_be_judged(repo, capsys):
    _gate_params(repo, min=0.9)
    two = ["ants", "bees"]
    _write_run(repo, BASELINE, "wrn", [f"{two[i % 2]}/{i}.jpg" for i in range(N)], classes=two)
    assert gate.main([]) == gate.FAILED
    out = capsys.readouterr().out
    assert "## Quality gate: FAILED" in out and "**Cannot judge:** not comparable" in out


# ------------------------------------------------------------------- malformed inputs


def _edit(path: Path, text: str) -> None:
    path.write_text(text)


MALFORMED = {
    "report: invalid JSON": ("metrics/report.json", '{"recommended": "wrn",',
                             "metrics/report.json: invalid JSON"),
    "report: a list": ("metrics/report.json", "[1, 2]",
                       "metrics/report.json: expected a JSON object, got a list"),
    "report: accuracy high": (
        "metrics/report.json", json.dumps({"recommended": "wrn", "accuracy": "high",
                                           "accuracy_low": 0.4, "accuracy_high": 0.6}),
        "metrics/report.json: accuracy is 'high', not a number between 0 and 1"),
    "report: no recommendation": ("metrics/report.json", json.dumps({"accuracy": 0.5}),
                                  "metrics/report.json: recommended is None, not a model name"),
    "evaluation: invalid JSON": ("metrics/evaluate/head.json", "{accuracy: 0.3}",
                                 "metrics/evaluate/head.json: invalid JSON"),
    "evaluation: accuracy 2": ("metrics/evaluate/resnet50.json", '{"accuracy": 2}',
                               "metrics/evaluate/resnet50.json: accuracy is 2, not a number "
                               "between 0 and 1"),
    "predictions: garbage": ("reports/predictions/wrn.csv", "\x00\x01 garbage\n;;;\n",
                             "reports/predictions/wrn.csv: not a predictions table"),
    "predictions: bad correct": (
        "reports/predictions/head.csv",
        "path,label,predicted,confidence,correct\na.jpg,star,star,0.5,maybe\n",
        "reports/predictions/head.csv: line 2: correct is 'maybe', not true or false"),
    "card: invalid JSON": ("models/wrn.json", "{", "models/wrn.json: invalid JSON"),
}


@pytest.mark.parametrize("case", MALFORMED, ids=list(MALFORMED))
def test_a_malformed_workspace_file_is_one_error_line_naming_it(repo, capsys, case):
    path, text, said = MALFORMED[case]
    _edit(repo / path, text)
    assert gate.main([]) == gate.ERROR
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {said}"), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""


@pytest.mark.parametrize("case", ["report: a list", "evaluation: invalid JSON",
                                  "predictions: garbage"])
def test_a_malformed_committed_file_names_the_revision(repo, capsys, case):
    path, text, said = MALFORMED[case]
    _edit(repo / path, text)
    _git(repo, "commit", "-qam", "broken")
    _write_run(repo, BASELINE, "wrn")  # the workspace is fine
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err.startswith(f"error: HEAD:{said}")


def test_no_dvc_on_path_is_one_error_line(repo, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gate, "lock_status", gate_lock_status)  # runs `dvc status`
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    monkeypatch.setenv("PATH", str(bin_dir))
    assert gate.main([]) == gate.ERROR
    err = capsys.readouterr().err
    assert err == ("error: dvc is not on PATH: `dvc status` checks dvc.lock against "
                   "params.yaml, the code and the outputs (activate the project's "
                   "environment)\n")


def _scripted_dvc(tmp_path: Path, monkeypatch, body: str) -> None:
    """A `dvc` on PATH that runs ``body`` (sh) for `dvc status --json` only, and fails
    with a usage line for any other arguments."""
    bin_dir = tmp_path / "scripted-bin"
    bin_dir.mkdir()
    script = bin_dir / "dvc"
    script.write_text('#!/bin/sh\nif [ "$*" != "status --json" ]; then echo "usage: $*" >&2; '
                      f"exit 254; fi\n{body}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(gate, "lock_status", gate_lock_status)


@pytest.mark.parametrize(("body", "said"), [
    ("printf 'ERROR: first\\n\\nERROR: second\\nERROR: the last line says why\\n\\n' >&2; "
     "exit 1",
     "error: dvc status failed: ERROR: the last line says why\n"),
    ("exit 3", "error: dvc status failed: 3\n"),
    ("printf '%0300d' 0", f"error: dvc status --json printed no JSON: {'0' * 200!r}\n"),
    ("echo '[1, 2]'", "error: dvc status --json printed list, not a mapping\n"),
], ids=["stderr", "silent", "not-json", "a-list"])
def test_a_failing_dvc_status_is_one_line_saying_why(repo, tmp_path, monkeypatch, capsys, body,
                                                      said):
    _scripted_dvc(tmp_path, monkeypatch, body)
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == said


def test_dvc_status_printing_nothing_is_in_sync(repo, tmp_path, monkeypatch, capsys):
    """DVC 3.6 prints "{}" when all is up to date; an empty answer means the same."""
    _scripted_dvc(tmp_path, monkeypatch, "exit 0")
    assert gate.main([]) == gate.PASSED
    assert "| dvc.lock matches params.yaml, the code and the outputs | in sync |" in \
        capsys.readouterr().out


# ----------------------------------------------------------------- drift and stale stages


def _fake_dvc(tmp_path: Path, monkeypatch, status: dict) -> None:
    """A `dvc` on PATH whose `status --json` prints ``status``, as DVC 3 does."""
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "status.json").write_text(json.dumps(status))
    script = bin_dir / "dvc"
    script.write_text(f"#!/bin/sh\ncat '{bin_dir / 'status.json'}'\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(gate, "lock_status", gate_lock_status)


def test_a_committed_output_edited_by_hand_is_drift_named_by_file(repo, tmp_path, monkeypatch,
                                                                  capsys):
    # The first false pass: gate.min 0.6 fails at 0.5; "accuracy": 0.7 by hand passed.
    _gate_params(repo, min=0.6)
    report = json.loads((repo / "metrics/report.json").read_text())
    (repo / "metrics/report.json").write_text(json.dumps(report | {"accuracy": 0.7}))
    _fake_dvc(tmp_path, monkeypatch, {
        "source": ["always changed"],
        "report": [{"changed outs": {"metrics/report.json": "modified",
                                     "reports/report.html": "not in cache"}}]})
    assert gate.main([]) == gate.FAILED
    captured = capsys.readouterr()
    assert ("- report: output metrics/report.json modified: it differs from dvc.lock (edited "
            "by hand, or left by a run whose dvc.lock was not kept)") in captured.out
    assert ("gate failed: dvc.lock matches params.yaml, the code and the outputs: 1 stale "
            "stage(s) (threshold in sync): report") in captured.err
    assert "reports/report.html" not in captured.out  # missing data (no DVC cache): not drift


def test_missing_cached_data_on_a_fresh_clone_is_not_drift(repo, tmp_path, monkeypatch, capsys):
    _fake_dvc(tmp_path, monkeypatch, {
        "weights": ["always changed"],
        "features": [{"changed deps": {"data/manifest.csv": "deleted"}},
                     {"changed outs": {"data/features": "deleted"}}],
        "train_head": [{"changed deps": {"data/features": "deleted"}},
                       {"changed outs": {"models/head.keras": "not in cache"}}]})
    assert gate.main([]) == gate.PASSED
    assert "| dvc.lock matches params.yaml, the code and the outputs | in sync |" in \
        capsys.readouterr().out


def test_stale_stages_are_each_listed_once_with_the_command_that_fixes_them(
        repo, tmp_path, monkeypatch, capsys):
    # The README's tour (dvc exp run evaluate_head -S head.dropout=0.1): 8 changes of 3
    # stages once read "8 stage change(s)" and listed 6 of them.
    (repo / "models/head.keras").write_text("a model")
    _git(repo, "add", "models/head.keras")
    _git(repo, "commit", "-qm", "a tracked model file")
    (repo / "models/head.keras").write_text("another")
    _fake_dvc(tmp_path, monkeypatch, {
        "finetune@resnet50": [{"changed deps": {"models/head.keras": "modified",
                                                "params.yaml": {"head": "modified"}}}],
        "export": [{"changed deps": {"metrics/evaluate": "modified",
                                     "reports/predictions": "modified",
                                     "models": "modified"}}],
        "report": [{"changed deps": {"metrics/evaluate": "modified", "models": "modified",
                                     "reports/predictions": "modified"}}]})
    assert gate.main([]) == gate.FAILED
    captured = capsys.readouterr()
    assert "| 3 stale stage(s) | in sync | **FAIL** — finetune@resnet50, export, report |" \
        in captured.out
    listed = [line for line in captured.out.splitlines() if line.startswith("- ")]
    assert [line.split(":")[0] for line in listed] == ["- finetune@resnet50", "- export",
                                                       "- report"]
    assert listed[0] == "- finetune@resnet50: models/head.keras modified; params head in " \
                        "params.yaml"
    assert "run `dvc repro` to bring them" in captured.out
    assert "gate: run `dvc repro`" in captured.err
    assert "3 stale stage(s) (threshold in sync): finetune@resnet50, export, report" in \
        captured.err


def test_a_mixed_folder_dep_drifts_only_when_its_git_files_changed(repo, capfd):
    """A folder of git files and cached ones (like models/), its cache missing: drift only
    if a file of git's in it was edited, whatever the folder's name (even a leading '-').
    Data that is not git's, deleted, is no drift, and git's own answers stay quiet."""
    from pipeline.gating.lock import stale_stages

    folder = repo / "-notes-X"
    folder.mkdir()
    (folder / "card.json").write_text("{}")
    _git(repo, "add", "--", "-notes-X/card.json")
    _git(repo, "commit", "-qm", "a card")
    for dep in ("-notes-X", "-notes-X/"):  # as dvc.yaml spells it
        status = {"evaluate": [{"changed deps": {dep: "modified",
                                                 "data/features.npz": "deleted"}},
                               {"changed outs": {"-notes-X/model.keras": "not in cache"}}]}
        (folder / "card.json").write_text("{}")
        assert stale_stages(status) == {}, dep
        (folder / "card.json").write_text('{"edited": true}')
        assert stale_stages(status) == {"evaluate": [f"{dep} modified"]}
    assert capfd.readouterr() == ("", "")


def test_changed_params_and_deleted_code_are_drift_named_stage_by_stage(repo):
    from pipeline.gating.lock import stale_stages

    (repo / "stages").mkdir()
    (repo / "stages" / "train_head.py").write_text("print('head')\n")
    _git(repo, "add", "stages/train_head.py")
    _git(repo, "commit", "-qm", "a stage")
    (repo / "stages" / "train_head.py").unlink()
    status = {"train_head": [{"changed deps": {"params.yaml": {"head": "modified",
                                                               "backbone": "modified"}}}],
              "evaluate_head": [{"changed deps": {"stages/train_head.py": "deleted"}}],
              "features": ["always changed"]}
    assert stale_stages(status) == {
        "train_head": ["params backbone, head in params.yaml"],
        "evaluate_head": ["stages/train_head.py deleted"]}


def test_drift_between_dvc_lock_and_params_fails(repo, monkeypatch, capsys):
    monkeypatch.setattr(gate, "lock_status",
                        lambda: {"train_head": ["params head in params.yaml"]})
    assert gate.main([]) == 1
    captured = capsys.readouterr()
    assert "- train_head: params head in params.yaml" in captured.out
    assert "gate failed: dvc.lock matches params.yaml, the code and the outputs" in captured.err


def test_every_exit_status_is_documented():
    doc = (Path(__file__).resolve().parents[1] / "docs/report-and-gate.md").read_text()
    for status, meaning in ((0, "passed"), (1, "a check failed"), (2, "error"),
                            (3, "cannot judge")):
        assert f"| {status} | {meaning}" in doc.lower()


def test_a_folder_of_cards_and_cached_models_drifts_only_when_a_card_changed(
        repo, tmp_path, monkeypatch, capsys):
    """`models` holds the cards (in git) and the .keras files (DVC's cache): on a clone
    without the cache it reads "modified". That is drift only if a card in git differs
    from the commit, or a new one is there."""
    status = {"train_head": [{"changed outs": {"models/head.keras": "not in cache"}}],
              "export": [{"changed deps": {"models": "modified"}}]}
    _fake_dvc(tmp_path, monkeypatch, status)
    assert gate.main([]) == gate.PASSED
    assert "| dvc.lock matches params.yaml, the code and the outputs | in sync |" in \
        capsys.readouterr().out
    for change in ("edited", "added"):
        card = repo / "models" / ("wrn.json" if change == "edited" else "new.json")
        card.write_text(json.dumps({"name": "wrn", "classes": CLASSES, "family": "changed"}))
        assert gate.main([]) == gate.FAILED, change
        assert "- export: models modified" in capsys.readouterr().out, change
        _git(repo, "checkout", "--", "models")
        if change == "added":
            card.unlink()
        assert gate.main([]) == gate.PASSED, change  # as committed again
    # A file that git does not track (data) is never drift, deleted or modified.
    _fake_dvc(tmp_path, monkeypatch, {"features": [{"changed deps": {
        "data/manifest.csv": "modified", "data/other.csv": "deleted"}}]})
    assert gate.main([]) == gate.PASSED


def test_a_model_gone_or_without_predictions_is_listed_and_not_paired(repo, capsys):
    """resnet50 left params.yaml (gone), head's predictions are missing now: both rows say
    why, with the figures there are; the shipped row appears only when the shipped model
    changed."""
    write_params(repo, {"gate.metric": "accuracy", "gate.min": 0.3, "gate.max_drop": 0.05,
                        "gate.alpha": 0.05, "finetune": {}})
    for path in ("metrics/evaluate/resnet50.json", "reports/predictions/resnet50.csv",
                 "models/resnet50.json", "reports/predictions/head.csv"):
        (repo / path).unlink()
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "| head | 0.3333 | 0.3333 | +0.0000 | – | 0 / 0 | pass: not paired: predictions " \
           "missing in one run |" in out
    assert "| resnet50 | 0.3667 | – | – | – | 0 / 0 | pass: gone: not in this run |" in out
    assert "shipped:" not in out  # wrn, as at HEAD


# ----------------------------------------------- what the gate reads, and how (mutants)

def test_verbose_names_each_file_the_gate_read_or_found_missing(repo, caplog):
    """--verbose: one line per file of either run, read or not there, the committed ones
    by revision; the verdict is unchanged."""
    (repo / "models/head.json").unlink()
    assert gate.main(["--verbose"]) == 0
    err = caplog.messages
    assert "gate: metrics/report.json: read" in err
    assert "gate: HEAD:metrics/report.json: read" in err
    assert "gate: models/head.json: not there" in err
    assert "gate: HEAD:models/head.json: read" in err
    assert err[0] == "gate: accuracy >= 0.3, against HEAD"  # what it checks, first


def test_help_says_what_the_gate_does_and_what_its_exit_statuses_mean(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # argparse wraps at the terminal's width
    with pytest.raises(SystemExit) as done:
        gate.main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("usage: python -m pipeline.gate [-h] [--against REV]")
    assert gate.__doc__.strip().splitlines()[0] in out
    assert any(re.fullmatch(r"  --against REV +git revision whose committed metrics are the "
                            r"baseline \(default: HEAD; in CI the target branch\)", line)
               for line in out), out
    assert out[-1] == ("exit status: 0 passed, 1 a check failed, 2 error (the gate could not "
                       "run), 3 cannot judge (docs/report-and-gate.md)")


def test_workspace_files_are_read_as_utf8_whatever_the_locale(repo, capsys):
    """A note with accents in a metrics file, under LANG=C: read, compared, passed."""
    path = repo / "metrics/evaluate/head.json"
    path.write_text(path.read_text()[:-1] + ', "note": "été"}', encoding="utf-8")
    with c_locale():
        assert gate.main([]) == 0, capsys.readouterr().err


def test_a_workspace_file_that_is_not_utf8_is_one_error_line_naming_it(repo, capsys):
    (repo / "metrics/evaluate/head.json").write_bytes(b'{"accuracy": 0.3, "n": "\xe9"}')
    assert gate.main([]) == gate.ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: metrics/evaluate/head.json: cannot read ('utf-8' codec "
                          "can't decode byte 0xe9"), err
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(("classes", "shown"), [("circle,square", "'circle,square'"),
                                                 ([1, 2], "[1, 2]")])
def test_a_card_whose_classes_are_not_names_is_one_error_line(repo, capsys, classes, shown):
    (repo / "models/wrn.json").write_text(json.dumps({"name": "wrn", "classes": classes}))
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == (f"error: models/wrn.json: classes is {shown}, not a "
                                       "list of class names\n")


def test_a_report_without_its_interval_is_one_error_line(repo, capsys):
    report = json.loads((repo / "metrics/report.json").read_text())
    del report["accuracy_low"]
    (repo / "metrics/report.json").write_text(json.dumps(report))
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == "error: metrics/report.json: no accuracy_low\n"


def test_the_workspace_has_no_listing_of_models(repo):
    """Only a commit's models are listed from its files; the workspace's are params.yaml's
    (a caller asking the workspace is a bug, told so)."""
    from pipeline.gating import revisions
    from pipeline.gating.run_results import Source

    with pytest.raises(ValueError, match=r"^the workspace's models are params.yaml's, not "
                                         r"a listing$"):
        Source().models()
    (repo / "metrics/evaluate/old run.json").write_text('{"accuracy": 0.2}')
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "a file name with a space")
    sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, text=True,
                         capture_output=True).stdout.strip()
    assert Source(sha, "HEAD").models() == ["head", "old run", "resnet50", "wrn"]
    assert "old run.json" in revisions.listing(sha, Path("metrics/evaluate"))


def test_an_unforeseen_error_is_one_line_naming_the_gate_and_never_a_pass(repo, capsys,
                                                                          monkeypatch):
    """A bug nobody foresaw (here in the comparison): exit 2 and one line saying what it
    was, with the traceback kept in .cache/logs/gate.log; --verbose shows it instead."""
    def broken(*args):
        raise ZeroDivisionError("the comparison divided by zero")

    monkeypatch.setattr(gate, "compare", broken)
    assert gate.main([]) == gate.ERROR
    captured = capsys.readouterr()
    assert captured.out == ""
    line = captured.err.strip()
    assert line.startswith("error: gate: unexpected ZeroDivisionError: the comparison divided "
                           "by zero"), line
    assert "traceback in .cache/logs/gate.log" in line and len(line.splitlines()) == 1
    assert "ZeroDivisionError" in (repo / ".cache/logs/gate.log").read_text()
    with pytest.raises(ZeroDivisionError):
        gate.main(["--verbose"])


@pytest.mark.parametrize("rev", ["--output=/tmp/x", ""])
def test_an_option_or_nothing_given_as_the_revision_is_refused(repo, capsys, rev):
    assert gate.main([f"--against={rev}"]) == gate.ERROR
    assert capsys.readouterr().err == (f"error: --against {rev!r}: a git revision (branch, "
                                       "tag or commit), not an option\n")


def test_outside_a_git_repository_the_error_says_so(repo, capsys, monkeypatch):
    shutil.rmtree(repo / ".git")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(repo.parent))  # wherever tmp lives
    assert gate.main([]) == gate.ERROR
    assert capsys.readouterr().err == (f"error: {repo}: not a git repository, so no revision "
                                       "'HEAD' to compare with\n")
