"""End to end: the project copied into a fresh git repository, driven with dvc as a user would.

A tiny profile (32 px images, a few per class, random backbone weights, one
or two epochs) keeps a full `dvc repro` to a minute or two on a 2-core CPU.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import ROOT
from PIL import Image

PROJECT_FILES = ["pipeline", "stages", "params.yaml", "dvc.yaml", "pyproject.toml",
                 ".dvc/config", ".dvcignore", ".gitignore", "reports/templates"]
TIMING_KEYS = re.compile(r"seconds|per_second")
NOISE = re.compile(r"oneDNN custom operations|Could not find cuda drivers|absl::InitializeLog"
                   r"|triggered tf\.function retracing|I0000 |E0000 ")
MODELS = ("head", "resnet50", "wrn")

pytestmark = pytest.mark.e2e


def tiny_profile(params: dict) -> dict:
    params["sample"].update(images_per_class=6, image_size=32)
    params["validate"].update(min_per_class=1)
    params["backbone"].update(image_size=32, weights="none", batch_size=16)
    params["head"].update(epochs=3, patience=2)
    for entry in params["finetune"].values():
        entry.update(epochs=1, image_size=32, batch_size=8, head_epochs=1)
    for entry in params["scratch"].values():
        entry.update(epochs=1, image_size=32, batch_size=8)
        if entry["family"] == "wrn":
            entry.update(depth=10, width=1)
    params["gate"].update(min=0.0)
    return params


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)  # dvc and the stages' `python` from this venv
    # The copy's own pipeline/ first: not the editable install's (the repository's).
    path = os.pathsep.join([str(cwd), os.environ.get("PYTHONPATH", "")])
    env = os.environ | {"PATH": bindir + os.pathsep + os.environ["PATH"], "PYTHONPATH": path}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def quality(metrics_file: Path) -> dict:
    """A metrics file without its timing figures, which vary from run to run."""
    def strip(node):
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if not TIMING_KEYS.search(k)}
        return node
    return strip(json.loads(metrics_file.read_text()))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh clone-alike of the project with the tiny profile, after one `dvc repro`."""
    repo = tmp_path_factory.mktemp("project")
    for name in PROJECT_FILES:
        src, dst = ROOT / name, repo / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    params = tiny_profile(yaml.safe_load((repo / "params.yaml").read_text()))
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "git", "init", "-q", "-b", "main")
    # dvc exp run commits too: give the repository an identity of its own.
    sh(repo, "git", "config", "user.name", "e2e test")
    sh(repo, "git", "config", "user.email", "e2e@example.invalid")
    commit(repo, "tiny profile")
    first = sh(repo, "dvc", "repro")
    (repo / "first_repro.log").write_text(first.stdout + first.stderr)
    commit(repo, "first run")
    return repo


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message)


def exp_run(project: Path, *settings: str, target: str | None = None) -> set[str]:
    """Stages that `dvc exp run` runs for ``settings``; the workspace is reset afterwards."""
    args = [a for s in settings for a in ("-S", s)]
    run = sh(project, "dvc", "exp", "run", *([target] if target else []), *args)
    sh(project, "git", "checkout", "--", ".")
    sh(project, "dvc", "checkout", "--force")
    return stages_run(run.stdout)


def test_repro_runs_every_stage_quietly_and_writes_outputs(project):
    log = (project / "first_repro.log").read_text()
    expected = {"sample", "prepare", "validate", "weights", "features", "train_head",
                "finetune@resnet50", "scratch@wrn", "report",
                *(f"evaluate@{m}" for m in MODELS)}
    assert stages_run(log) == expected
    assert not NOISE.search(log), NOISE.search(log).group(0)
    assert len(list((project / "data/sample").rglob("*.jpg"))) == 30
    for name in MODELS:
        card = json.loads((project / f"models/{name}.json").read_text())
        assert card["classes"] == ["circle", "square", "star", "stripes", "triangle"]
        scores = json.loads((project / f"metrics/evaluate/{name}.json").read_text())
        assert 0 <= scores["accuracy"] <= 1
    assert json.loads((project / "metrics/features.json").read_text())["weights"] == "random"
    report = json.loads((project / "metrics/report.json").read_text())
    assert report["recommended"] in MODELS
    assert (project / "models/best/model.keras").is_file()
    assert "Which model to ship" in (project / "reports/report.html").read_text()


def test_every_declared_plot_exists_and_is_not_empty(project):
    """What `dvc plots show` draws: each file of the top-level plots and the stage plots."""
    shown = json.loads(sh(project, "dvc", "plots", "show", "--json").stdout)
    assert not shown.get("errors"), shown.get("errors")
    declared = yaml.safe_load((project / "dvc.yaml").read_text())["plots"]
    files = set()
    for entry in declared:
        if isinstance(entry, str):
            files.add(entry)
            continue
        (spec,) = entry.values()
        for axis in ("x", "y"):
            if isinstance(spec.get(axis), dict):
                files.update(spec[axis])
    assert len(files) >= 20
    for name in sorted(files):
        path = project / name
        assert path.is_file() and path.stat().st_size > 0, name
        if path.suffix in (".tsv", ".csv"):
            assert len(path.read_text().splitlines()) >= 2, f"{name} has no rows"
    sh(project, "dvc", "plots", "show", "-o", "page")
    html = (project / "page" / "index.html").read_text()
    assert "cdn.jsdelivr" not in html and "vega-embed" in html  # inlined: renders offline


def test_metrics_stay_few(project):
    """`dvc exp show` compares runs on a few numbers, whatever the number of classes."""
    shown = json.loads(sh(project, "dvc", "exp", "show", "--json").stdout)
    metrics = shown[0]["data"]["metrics"]

    def count(node) -> int:
        return sum(count(v) for v in node.values()) if isinstance(node, dict) else 1

    total = sum(count(v["data"]) for v in metrics.values())
    assert total <= 30, {k: count(v["data"]) for k, v in metrics.items()}


def test_second_repro_runs_only_the_weights_check(project):
    again = sh(project, "dvc", "repro")
    assert stages_run(again.stdout) == {"weights"}
    status = json.loads(sh(project, "dvc", "status", "--json").stdout)
    assert status == {"weights": ["always changed"]}, status


def test_same_params_give_the_same_metrics(project):
    files = ["metrics/train/head.json", "metrics/evaluate/head.json"]
    before = {name: quality(project / name) for name in files}
    sh(project, "dvc", "repro", "--force", "--single-item", "train_head")
    sh(project, "dvc", "repro", "--force", "--single-item", "evaluate@head")
    after = {name: quality(project / name) for name in files}
    assert after == before


@pytest.mark.parametrize(("settings", "target", "expected"), [
    # A head param: the head, the fine-tune that starts from it, their evaluations.
    (["head.dropout=0.5"], None,
     {"train_head", "finetune@resnet50", "evaluate@head", "evaluate@resnet50", "report"}),
    # The head alone: a head sweep waits for no network.
    (["head.dropout=0.1"], "evaluate@head", {"train_head", "evaluate@head"}),
    # The backbone: features and all that starts from them; never the scratch network.
    (["backbone.batch_size=8"], None, {"features", "train_head", "finetune@resnet50",
                                       "evaluate@head", "evaluate@resnet50", "report"}),
    # A fine-tune entry and a scratch entry: those models, their evaluations, the report.
    (["finetune.resnet50.learning_rate=0.0001", "scratch.wrn.dropout=0.1"], None,
     {"finetune@resnet50", "evaluate@resnet50", "scratch@wrn", "evaluate@wrn", "report"}),
])
def test_a_change_runs_exactly_the_stages_that_read_it(project, settings, target, expected):
    ran = exp_run(project, *settings, target=target)
    assert ran - {"weights"} == expected


def test_own_image_folder_as_data_source(project, tmp_path):
    own = tmp_path / "my photos"
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs", "ñandú birds"):
        (own / label).mkdir(parents=True)
        for i in range(6):
            pixels = rng.integers(0, 255, (24 + i, 30, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(own / label / f"img {i}.png")
    (own / ".DS_Store").write_bytes(b"\0")
    run = sh(project, "dvc", "exp", "run", "-S", f"data.source='{own}'")
    # A data change runs everything after the demo data.
    assert stages_run(run.stdout) - {"weights"} == {
        "prepare", "validate", "features", "train_head", "finetune@resnet50", "scratch@wrn",
        "report", *(f"evaluate@{m}" for m in MODELS)}
    card = json.loads((project / "models/best/card.json").read_text())
    assert card["classes"] == ["cats", "dogs", "ñandú birds"]
    summary = json.loads((project / "reports/data/prepare.json").read_text())
    assert summary["skipped"] == {"hidden": 1}
    sh(project, "git", "checkout", "--", ".")
    sh(project, "dvc", "checkout", "--force")


def test_the_gate_passes_the_committed_run_and_refuses_drift(project):
    ok = sh(project, "python", "-m", "pipeline.gate")
    assert "## Quality gate: PASSED" in ok.stdout
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("dropout: 0.2", "dropout: 0.25", 1))
    try:
        drift = sh(project, "python", "-m", "pipeline.gate", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert drift.returncode == 1
    assert "train_head: params head in params.yaml" in drift.stdout
    assert "gate failed: dvc.lock matches params.yaml and the code" in drift.stderr


def test_typo_in_params_fails_fast_naming_the_key(project):
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("learning_rate:", "lerning_rate:", 1))
    try:
        run = sh(project, "dvc", "repro", "--force", "--single-item", "sample", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert run.returncode != 0
    assert "head.lerning_rate: unknown key" in run.stdout + run.stderr
