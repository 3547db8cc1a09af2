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
    # 13 for the data, features and report, 7 per model (3 training, 4 evaluation).
    assert total <= 13 + 7 * len(MODELS), {k: count(v["data"]) for k, v in metrics.items()}


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
        sh(project, "dvc", "checkout", "--force")  # DVC removed data/sample before the run
    assert run.returncode != 0
    assert "head.lerning_rate: unknown key" in run.stdout + run.stderr


def test_killed_training_resumes_after_its_last_epoch(project):
    """BackupAndRestore: kill -9 the scratch stage after an epoch; run again: it resumes,
    ends with the full epoch count and removes its backup."""
    import signal
    import time

    params = (project / "params.yaml").read_text()
    raw = yaml.safe_load(params)
    raw["scratch"]["wrn"].update(epochs=4, patience=10)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    backups = project / ".cache/backup"
    bindir = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": bindir + os.pathsep + os.environ["PATH"],
                        "PYTHONPATH": os.pathsep.join([str(project),
                                                       os.environ.get("PYTHONPATH", "")])}
    try:
        log = project / "killed.log"
        with log.open("w") as out:
            proc = subprocess.Popen(["python", "stages/scratch.py", "wrn"], cwd=project,
                                    env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            metas = list(backups.glob("scratch-wrn-*/training_metadata.json"))
            if metas and json.loads(metas[0].read_text() or "{}").get("epoch", 0) >= 1:
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
        assert proc.returncode == -signal.SIGKILL, log.read_text()[-3000:]
        (meta,) = backups.glob("scratch-wrn-*/training_metadata.json")
        killed_at = json.loads(meta.read_text())["epoch"]
        assert 1 <= killed_at < 4
        again = sh(project, "python", "stages/scratch.py", "wrn")
        assert f"after epoch {killed_at}" in again.stdout
        card = json.loads((project / "models/wrn.json").read_text())
        assert card["epochs_run"] == 4 and card["resumed_at_epoch"] == killed_at + 1
        steps = (project / "dvclive/wrn/plots/metrics/train/loss.tsv").read_text().split()[2::2]
        assert [int(s) for s in steps] == [0, 1, 2, 3]  # one curve, no epoch lost or twice
        assert not list(backups.glob("scratch-wrn*"))
    finally:
        (project / "params.yaml").write_text(params)
        (project / "killed.log").unlink(missing_ok=True)
        sh(project, "git", "checkout", "--", ".")
        sh(project, "dvc", "checkout", "--force")


def test_a_second_clone_pulls_the_shared_cache_and_recomputes_nothing(project, tmp_path):
    """The team workflow: a DVC remote (a local folder here, s3://... for a team), the
    user's own images tracked with `dvc add`; a fresh clone pulls instead of recomputing."""
    photos = project / "photos"
    for label in ("a", "b"):
        (photos / label).mkdir(parents=True)
        Image.new("RGB", (8, 8), label == "a" and "red" or "blue").save(photos / label / "1.png")
    remote = tmp_path / "remote"
    sh(project, "dvc", "add", "photos")
    sh(project, "dvc", "remote", "add", "-d", "storage", str(remote))
    commit(project, "photos and a shared cache")
    sh(project, "dvc", "push")
    clone = tmp_path / "clone"
    sh(tmp_path, "git", "clone", "-q", str(project), str(clone))
    sh(clone, "dvc", "pull")
    assert (clone / "photos/a/1.png").read_bytes() == (photos / "a/1.png").read_bytes()
    again = sh(clone, "dvc", "repro")
    assert stages_run(again.stdout) == {"weights"}  # the always-changed check, nothing else
    assert json.loads(sh(clone, "dvc", "metrics", "diff", "--json").stdout or "{}") == {}
    assert json.loads(sh(clone, "dvc", "status", "--json").stdout) == {
        "weights": ["always changed"]}


def test_queued_experiments_run_two_at_a_time(project):
    """`dvc exp run --queue` with two values, `dvc queue start --jobs 2`: both finish, each
    with its own metrics."""
    import time

    for dropout in ("0.3", "0.4"):
        sh(project, "dvc", "exp", "run", "--queue", "evaluate@head", "-S",
           f"head.dropout={dropout}")
    sh(project, "dvc", "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = sh(project, "dvc", "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert "Failed" not in status and status.count("Success") >= 2, status
    shown = json.loads(sh(project, "dvc", "exp", "show", "--json").stdout)
    found = {}  # experiments hang under their baseline commit, after the workspace
    for exp in (e for top in shown for e in top.get("experiments") or []):
        for rev in exp.get("revs", []):
            data = rev.get("data") or {}
            dropout = data["params"]["params.yaml"]["data"]["head"]["dropout"]
            accuracy = data["metrics"]["metrics/evaluate/head.json"]["data"]["accuracy"]
            found[dropout] = accuracy
    assert {0.3, 0.4} <= set(found), found
    assert all(0 <= a <= 1 for a in found.values())
