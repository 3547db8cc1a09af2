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
                 ".dvc/config", ".dvcignore", ".gitignore"]
TIMING_KEYS = re.compile(r"seconds|per_second")

pytestmark = pytest.mark.e2e


def tiny_profile(params: dict) -> dict:
    params["sample"].update(images_per_class=6, image_size=32)
    params["validate"].update(min_per_class=1)
    params["backbone"].update(image_size=32, weights="none", batch_size=16)
    params["head"].update(epochs=3, patience=2)
    for entry in params.get("finetune", {}).values():
        entry.update(epochs=1, image_size=32, batch_size=8)
        if entry["family"] == "resnet":
            entry["head_epochs"] = 1
        if entry["family"] == "wrn":
            entry.update(depth=10, width=1)
    return params


def sh(cwd: Path, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)  # dvc and the stages' `python` from this venv
    env = os.environ | {"PATH": bindir + os.pathsep + os.environ["PATH"]}
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
    return repo


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message)


def test_repro_runs_every_stage_and_writes_outputs(project):
    log = (project / "first_repro.log").read_text()
    expected = {"sample", "prepare", "validate", "weights", "features", "train_head", "evaluate"}
    expected |= {f"finetune@{name}" for name in yaml.safe_load(
        (project / "params.yaml").read_text()).get("finetune", {})}
    assert stages_run(log) == expected
    assert len(list((project / "data/sample").rglob("*.jpg"))) == 30
    for npz in ("train", "val", "test"):
        assert (project / f"data/features/{npz}.npz").is_file()
    assert (project / "models/head.keras").is_file()
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    assert set(evaluation) == {"head", *yaml.safe_load(
        (project / "params.yaml").read_text()).get("finetune", {})}
    assert 0 <= evaluation["head"]["accuracy"] <= 1
    assert json.loads((project / "metrics/weights.json").read_text())["source"] == "random"
    assert (project / "metrics/confusion/head.csv").read_text().startswith("actual,predicted")
    assert (project / "metrics/evaluate.md").read_text().count("| head |") == 1


def test_second_repro_runs_only_the_weights_check(project):
    commit(project, "first run")
    again = sh(project, "dvc", "repro")
    assert stages_run(again.stdout) == {"weights"}
    status = json.loads(sh(project, "dvc", "status", "--json").stdout)
    assert status == {"weights": ["always changed"]}, status


def test_same_params_give_the_same_metrics(project):
    before = {name: quality(project / f"metrics/{name}.json") for name in ("head", "evaluate")}
    sh(project, "dvc", "repro", "--force", "--single-item", "train_head")
    sh(project, "dvc", "repro", "--force", "--single-item", "evaluate")
    after = {name: quality(project / f"metrics/{name}.json") for name in ("head", "evaluate")}
    assert after == before


def test_exp_run_on_a_head_param_reruns_only_downstream(project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    finetunes = {f"finetune@{name}" for name in params.get("finetune", {})}
    run = sh(project, "dvc", "exp", "run", "-S", "head.dropout=0.5", "-S", "head.epochs=4")
    assert stages_run(run.stdout) == {"weights", "train_head", "evaluate", *finetunes}

    diff = sh(project, "dvc", "metrics", "diff", "--json")
    changed = json.loads(diff.stdout)
    assert "metrics/head.json" in changed, diff.stdout

    shown = sh(project, "dvc", "exp", "show", "--json")
    assert "head.dropout" in shown.stdout or '"dropout": 0.5' in shown.stdout


def test_exp_run_on_image_size_reruns_from_features(project):
    run = sh(project, "dvc", "exp", "run", "-S", "backbone.image_size=40")
    ran = stages_run(run.stdout)
    assert {"features", "train_head", "evaluate"} <= ran
    assert not ran & {"sample", "prepare", "validate"}


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
    assert {"prepare", "validate", "features", "train_head", "evaluate"} <= stages_run(run.stdout)
    evaluation = json.loads((project / "metrics/evaluate.json").read_text())
    assert set(evaluation["head"]["per_class"]) == {"cats", "dogs", "ñandú birds"}
    assert json.loads((project / "metrics/prepare.json").read_text())["skipped"] == {"hidden": 1}


def test_typo_in_params_fails_fast_naming_the_key(project):
    params = (project / "params.yaml").read_text()
    (project / "params.yaml").write_text(params.replace("learning_rate:", "lerning_rate:", 1))
    try:
        run = sh(project, "dvc", "repro", "--force", "--single-item", "sample", check=False)
    finally:
        (project / "params.yaml").write_text(params)
    assert run.returncode != 0
    assert "head.lerning_rate: unknown key" in run.stdout + run.stderr
