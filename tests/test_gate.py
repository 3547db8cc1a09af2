"""The quality gate against the committed run: floors, paired per-model changes, drift."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import repo_params, write_params

from pipeline import gate
from pipeline.evaluation.stats import wilson_interval

N = 60
CLASSES = ["circle", "square", "star", "stripes", "triangle"]
# The committed run (HEAD): wrn recommended at 0.50, head and resnet50 near a third.
BASELINE = {"head": set(range(20, 40)), "resnet50": set(range(10, 32)), "wrn": set(range(30))}


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _write_run(repo: Path, correct: dict[str, set[int]], recommended: str,
               images: list[str] | None = None) -> None:
    """metrics/report.json, metrics/evaluate/*.json and reports/predictions/*.csv of a run
    whose model M got exactly the test images ``correct[M]`` right."""
    images = images or [f"{CLASSES[i % 5]}/img{i:03d}.jpg" for i in range(N)]
    (repo / "metrics" / "evaluate").mkdir(parents=True, exist_ok=True)
    (repo / "reports" / "predictions").mkdir(parents=True, exist_ok=True)
    for model, right in correct.items():
        labels = [CLASSES[i % 5] for i in range(len(images))]
        predicted = [c if i in right else CLASSES[(i + 1) % 5] for i, c in enumerate(labels)]
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
    monkeypatch.setattr(gate, "lock_status", lambda: [])  # no DVC project here
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
    assert "Falling back to the unpaired rule" in out
    assert "| unpaired drop of accuracy against HEAD (wrn 0.5000) |" in out
    assert "McNemar p" not in out  # no per-model table: nothing was paired


def test_the_unpaired_fallback_still_refuses_a_drop_beyond_the_interval(repo, capsys):
    images = [f"{CLASSES[i % 5]}/new{i:03d}.jpg" for i in range(N)]
    _write_run(repo, BASELINE | {"wrn": set(range(12))}, "wrn", images)  # 0.20: top 0.32
    assert gate.main([]) == 1
    assert "gate failed: unpaired drop of accuracy against HEAD (wrn 0.5000)" in \
        capsys.readouterr().err


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


def test_drift_between_dvc_lock_and_params_fails(repo, monkeypatch, capsys):
    monkeypatch.setattr(gate, "lock_status", lambda: ["train_head: params head.dropout"])
    assert gate.main([]) == 1
    captured = capsys.readouterr()
    assert "train_head: params head.dropout" in captured.out
    assert "dvc.lock matches params.yaml and the code" in captured.err


def test_no_baseline_at_the_revision_is_said_not_failed(repo, capsys):
    _git(repo, "rm", "-q", "--cached", "metrics/report.json")
    _git(repo, "commit", "-qm", "drop it")
    assert gate.main([]) == 0
    assert "No baseline: metrics/report.json is not committed at `HEAD`" in \
        capsys.readouterr().out


def test_no_workspace_metrics_exit_2(repo, capsys):
    (repo / "metrics" / "report.json").unlink()
    assert gate.main([]) == 2
    assert "run `dvc repro` first" in capsys.readouterr().err
