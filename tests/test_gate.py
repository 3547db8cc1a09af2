"""The quality gate against committed metrics: floors, drops beyond the interval, drift."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from helpers import write_params

from pipeline import gate


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def _metrics(repo: Path, accuracy: float, low: float, high: float, model: str = "wrn") -> None:
    (repo / "metrics" / "evaluate").mkdir(parents=True, exist_ok=True)
    (repo / "metrics" / "report.json").write_text(json.dumps({
        "recommended": model, "accuracy": accuracy, "accuracy_low": low,
        "accuracy_high": high}))
    (repo / "metrics" / "evaluate" / f"{model}.json").write_text(json.dumps({
        "accuracy": accuracy, "macro_f1": accuracy - 0.01}))


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A git repository whose HEAD has a run at accuracy 0.80 (0.70-0.87)."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {"gate.metric": "accuracy", "gate.min": 0.5, "gate.max_drop": 0.05})
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "config", "user.email", "t@example.invalid")
    _git(tmp_path, "config", "user.name", "t")
    _metrics(tmp_path, 0.80, 0.70, 0.87)
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "commit", "-qm", "baseline")
    monkeypatch.setattr(gate, "lock_status", lambda: [])  # no DVC project here
    return tmp_path


def test_the_committed_run_passes(repo, capsys):
    assert gate.main([]) == 0
    out = capsys.readouterr().out
    assert "## Quality gate: PASSED (against `HEAD`)" in out
    assert "| wrn accuracy >= min | 0.8000 | 0.5000 | pass |" in out
    assert "not a significant change" in out


def test_a_regression_beyond_the_interval_is_refused_naming_the_metric(repo, capsys):
    _metrics(repo, 0.60, 0.48, 0.70)  # the top of the interval is 0.10 under the baseline
    assert gate.main([]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert "gate failed: drop of accuracy against HEAD (wrn 0.8000): +0.1000 (threshold <= " \
           "0.0500)" in captured.err


def test_a_drop_within_noise_is_not_a_regression(repo, capsys):
    _metrics(repo, 0.77, 0.66, 0.85)  # 3 points down, the interval still reaches 0.80
    assert gate.main([]) == 0
    assert "not a significant change" in capsys.readouterr().out


def test_below_the_floor_fails(repo, capsys):
    write_params(repo, {"gate.metric": "accuracy", "gate.min": 0.9, "gate.max_drop": 0.05})
    assert gate.main([]) == 1
    assert "gate failed: wrn accuracy >= min: 0.8000 (threshold 0.9000)" in capsys.readouterr().err


def test_macro_f1_has_no_interval_so_the_raw_drop_counts(repo, capsys):
    write_params(repo, {"gate.metric": "macro_f1", "gate.min": 0.5, "gate.max_drop": 0.05})
    _metrics(repo, 0.72, 0.60, 0.82)
    assert gate.main([]) == 1
    assert "drop of macro_f1" in capsys.readouterr().err


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
    assert "no baseline" in capsys.readouterr().out


def test_no_workspace_metrics_exit_2(repo, capsys):
    (repo / "metrics" / "report.json").unlink()
    assert gate.main([]) == 2
    assert "run `dvc repro` first" in capsys.readouterr().err
