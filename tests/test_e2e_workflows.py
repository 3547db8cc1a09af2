"""End to end, the workflows around a run: a killed training resumed, experiments queued
two at a time. Its own tiny project (see test_e2e.py), so that pytest-xdist runs it beside
that module, run as far as the head's evaluation: these tests run the rest they need.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import e2e_project, project_state, restore_project, sh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """The project after `dvc repro evaluate_head` (a full run is test_e2e.py's), and its
    state then."""
    repo = e2e_project(tmp_path_factory.mktemp("project"), "evaluate_head")
    return repo, project_state(repo)


@pytest.fixture
def project(first_run):
    """The shared project as its first run left it, whatever the test before changed."""
    repo, state = first_run
    restore_project(repo, state)
    return repo


def test_killed_training_resumes_to_what_an_uninterrupted_run_gives(project):
    """BackupAndRestore and the run's memory, through `dvc repro` (which removes the stage's
    outputs, the curves among them, before it runs it again): kill -9 the scratch stage
    after an epoch; repro again: it resumes, ends with the full epoch count, removes its
    backup, and its model, card, metrics and curves are those of an uninterrupted run, but
    for the time they measure."""
    import signal
    import time

    import psutil

    from pipeline.models.saving import load_model

    params = (project / "params.yaml").read_text()
    raw = yaml.safe_load(params)
    # Dropout inside the blocks and every augmentation on: all that draws random numbers.
    raw["scratch"]["wrn"].update(epochs=4, patience=3, dropout=0.3)
    raw["scratch"]["wrn"]["augment"].update(flip=True, crop=True, color_jitter=0.2,
                                            mixup_alpha=0.2)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    backups = project / ".cache/backup"
    bindir = str(Path(sys.executable).parent)
    env = os.environ | {"PATH": bindir + os.pathsep + os.environ["PATH"],
                        "PYTHONPATH": os.pathsep.join([str(project),
                                                       os.environ.get("PYTHONPATH", "")])}

    def untimed(record: dict) -> dict:
        return {k: v for k, v in record.items()
                if "second" not in k and k != "resumed_after_epoch"}

    def outputs() -> tuple:
        weights = load_model(project / "models/wrn.keras").get_weights()
        curves = {str(p.relative_to(project)): p.read_text()
                  for p in sorted((project / "dvclive/wrn").rglob("*")) if p.is_file()}
        return (untimed(json.loads((project / "models/wrn.json").read_text())),
                untimed(json.loads((project / "metrics/train/wrn.json").read_text())),
                curves, weights)

    def backup_epoch() -> int:
        for meta in backups.glob("scratch-wrn-*/training_metadata.json"):
            try:
                return json.loads(meta.read_text())["epoch"]
            except (ValueError, KeyError):  # caught while Keras writes it
                pass
        return 0

    try:
        sh(project, "dvc", "repro", "scratch@wrn")
        whole = outputs()
        log = project / "killed.log"
        with log.open("w") as out:
            # -s: this stage only; --no-run-cache: run it, not restore the run above.
            proc = subprocess.Popen(["dvc", "repro", "-f", "-s", "--no-run-cache",
                                     "scratch@wrn"], cwd=project, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if backup_epoch() >= 1:
                for child in psutil.Process(proc.pid).children(recursive=True):
                    if "stages/scratch.py" in " ".join(child.cmdline()):
                        child.send_signal(signal.SIGKILL)  # the stage, not DVC
                break
            time.sleep(0.02)
        proc.wait(timeout=60)
        assert proc.returncode != 0, log.read_text()[-3000:]
        killed_at = backup_epoch()
        assert 1 <= killed_at < 4, log.read_text()[-3000:]
        # The next `dvc repro` removes dvclive/wrn before it runs the stage: the curves
        # come back from the copy beside the backup.
        assert list(backups.glob("scratch-wrn-*-curves/plots/metrics/train/loss.tsv"))
        again = sh(project, "dvc", "repro", "--no-run-cache", "scratch@wrn")
        assert f"after epoch {killed_at}" in again.stdout
        card = json.loads((project / "models/wrn.json").read_text())
        assert card["resumed_after_epoch"] == killed_at
        steps = (project / "dvclive/wrn/plots/metrics/train/loss.tsv").read_text().split()[2::2]
        assert [int(s) for s in steps] == [0, 1, 2, 3]  # one curve, no epoch lost or twice
        assert not list(backups.glob("scratch-wrn*"))
        resumed = outputs()
        assert resumed[0] == whole[0] and whole[0]["epochs_run"] == 4  # card
        assert resumed[1] == whole[1]  # metrics
        assert resumed[2] == whole[2]  # every curve, epoch by epoch
        for a, b in zip(whole[3], resumed[3], strict=True):
            np.testing.assert_array_equal(a, b)
    finally:  # the project fixture restores the outputs for the next test
        (project / "params.yaml").write_text(params)
        (project / "killed.log").unlink(missing_ok=True)


def test_queued_experiments_run_two_at_a_time(project, tmp_path, monkeypatch):
    """`dvc exp run --queue` with two values, `dvc queue start --jobs 2`: both finish, each
    with its own metrics, and their stages ran at the same time."""
    import time

    import proclog

    monkeypatch.setenv(proclog.ENV, str(tmp_path / "processes.jsonl"))
    for dropout in ("0.3", "0.4"):
        sh(project, "dvc", "exp", "run", "--queue", "evaluate_head", "-S",
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
    # Each experiment runs in a folder of its own: its stages ran from the first stage
    # script's start to the last one's end, there. Two at a time: the spans overlap.
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    for record in proclog.read(tmp_path / "processes.jsonl"):
        if record["argv"] and "stages/" in Path(record["argv"][0]).as_posix():
            cwd, at = record["cwd"], record["time"]
            if record["event"] == "start":
                starts[cwd] = min(starts.get(cwd, at), at)
            else:
                ends[cwd] = max(ends.get(cwd, at), at)
    assert len(starts) == 2 and starts.keys() == ends.keys(), (starts, ends)
    assert max(starts.values()) < min(ends.values()), f"not at once: {starts} {ends}"
