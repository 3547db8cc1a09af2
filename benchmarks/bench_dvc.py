"""Subprocess measurements for benchmarks/run.py: dvc in temporary copies of the project.

Nothing here touches the repository itself: each measurement copies the project's
files into a fresh git repository under a temporary folder (as tests/test_e2e.py
does), edits its params.yaml, and drives `dvc` (and the stage scripts) there, with
this interpreter's environment first on PATH so that stages run the same Python.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = Path(__file__).resolve().parent / "notebook_head.py"
PROJECT_FILES = ["pipeline", "stages", "params.yaml", "dvc.yaml", "pyproject.toml",
                 ".dvc/config", ".dvcignore", ".gitignore", "reports/templates"]
DROPOUTS = (0.3, 0.5, 0.4, 0.1, 0.6, 0.35, 0.45)  # never 0.2, the default (run-cached)
TIMEOUT = 3 * 3600


class CommandError(RuntimeError):
    """A command exited non-zero; the message holds its last lines of output."""


def environment(cwd: Path) -> dict[str, str]:
    """This environment, its interpreter's bin first on PATH (dvc and the stages' `python`),
    and ``cwd`` first on PYTHONPATH: in a copy, `python stages/x.py` must import the copy's
    pipeline/, not the one an editable install (`pip install -e .`) maps to the repository."""
    bindir = str(Path(sys.executable).parent)
    pythonpath = os.pathsep.join(filter(None, [str(cwd), os.environ.get("PYTHONPATH")]))
    env = os.environ | {"PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
                        "PYTHONPATH": pythonpath, "DVC_NO_ANALYTICS": "1",
                        "GIT_TERMINAL_PROMPT": "0"}
    env.pop("PIPELINE_VERBOSE", None)
    return env


def sh(cwd: Path, *cmd: str) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in ``cwd``; CommandError with the tail of its output when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=environment(cwd), capture_output=True, text=True,
                          timeout=TIMEOUT, check=False)
    if proc.returncode != 0:
        raise CommandError(failure(cmd, proc.returncode, proc.stdout + proc.stderr))
    return proc


def failure(cmd: tuple[str, ...], status: int, output: str) -> str:
    """What a failed command said last, progress bars left out."""
    lines = [line.strip() for line in output.splitlines()
             if line.strip() and "%|" not in line]
    return f"`{' '.join(cmd)}` exited {status}: " + " / ".join(lines[-3:])


def timed(cwd: Path, *cmd: str) -> float:
    """Wall-clock seconds of ``cmd`` (a whole process: interpreter start-up included)."""
    start = time.perf_counter()
    sh(cwd, *cmd)
    return time.perf_counter() - start


# Starts the command and reports its peak RSS. A small process of its own because Linux
# starts a forked child's ru_maxrss at its parent's resident size (exec keeps the
# maximum): forked straight from this process, with TensorFlow loaded, every stage would
# read about 1.8 GB, whatever it used.
LAUNCHER = """import os, signal, subprocess, sys
proc = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(proc.pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(str(usage.ru_maxrss))
if os.WIFSIGNALED(status):  # an out-of-memory kill must not read as an exit status
    print("killed by", signal.Signals(os.WTERMSIG(status)).name, file=sys.stderr)
    sys.exit(1)
sys.exit(os.WEXITSTATUS(status))
"""


def peak_rss_mb(cwd: Path, *cmd: str) -> float:
    """Peak resident memory (MB) of ``cmd`` (the stage process alone): ru_maxrss from
    wait4(2) in a small launcher process (see LAUNCHER)."""
    with tempfile.TemporaryFile("w+") as log, tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "maxrss"
        # A session of its own: on a timeout the stage goes too, not only the launcher.
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, str(report), *cmd],
                                cwd=cwd, env=environment(cwd), stdout=log, stderr=log,
                                text=True, start_new_session=True)
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise CommandError(f"`{' '.join(cmd)}` timed out after {TIMEOUT} s") from None
        if proc.returncode != 0:
            log.seek(0)
            raise CommandError(failure(cmd, proc.returncode, log.read()))
        return int(report.read_text()) / 1024  # KiB on Linux


# --- temporary copies of the project -------------------------------------------------------


def set_params(repo: Path, changes: dict[str, Any]) -> None:
    """Set dotted keys of the copy's params.yaml, as `dvc exp run -S key=value` does."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for dotted, value in changes.items():
        node = params
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node[key]
        node[leaf] = value
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def tiny_profile(repo: Path) -> None:
    """Close to the end-to-end test's profile: 32 px, 6 images a class, random weights, one
    epoch (fine-tuning: no head-only phase, the backbone left frozen), WRN-10-1. Only its
    no-op repro is timed; this keeps the untimed first repro short."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    changes: dict[str, Any] = {
        "sample.images_per_class": 6, "sample.image_size": 32, "validate.min_per_class": 1,
        "backbone.image_size": 32, "backbone.weights": "none", "backbone.batch_size": 16,
        "head.epochs": 1, "head.patience": 1,
    }
    for name in params["finetune"]:
        changes |= {f"finetune.{name}.epochs": 1, f"finetune.{name}.head_epochs": 0,
                    f"finetune.{name}.unfreeze": 0, f"finetune.{name}.image_size": 32,
                    f"finetune.{name}.batch_size": 8}
    for name, entry in params["scratch"].items():
        changes |= {f"scratch.{name}.epochs": 1, f"scratch.{name}.image_size": 32,
                    f"scratch.{name}.batch_size": 8}
        if entry.get("family") == "wrn":
            changes |= {f"scratch.{name}.depth": 10, f"scratch.{name}.width": 1}
    set_params(repo, changes)


def commit(repo: Path, message: str) -> None:
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", message, "--allow-empty")


def project_copy(dest: Path, changes: dict[str, Any] | None = None, *,
                 tiny: bool = False) -> Path:
    """The project's files in a new git repository at ``dest``, params edited, committed."""
    for name in PROJECT_FILES:
        src, dst = ROOT / name, dest / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dst)
    if tiny:
        tiny_profile(dest)
    set_params(dest, changes or {})
    sh(dest, "git", "init", "-q", "-b", "main")
    sh(dest, "git", "config", "user.name", "benchmark")
    sh(dest, "git", "config", "user.email", "benchmark@example.invalid")
    commit(dest, "benchmark copy")
    return dest


def reset(repo: Path) -> None:
    """Back to the last commit after `dvc exp run` applied an experiment to the workspace."""
    sh(repo, "git", "checkout", "--", ".")
    sh(repo, "dvc", "checkout", "--force", "--allow-missing", "-q")


# --- 4: the head loop ----------------------------------------------------------------------


def head_setup(dest: Path, data: Path, size: int) -> Path:
    """Untimed: a copy reading ``data`` at ``size`` px (duplicates dropped, random weights as
    the notebook has), after `dvc repro evaluate_head` (features extracted once), committed."""
    repo = project_copy(dest, {
        "data.source": str(data.resolve()), "data.images.duplicates": "drop",
        "validate.min_per_class": 2, "backbone.weights": "none", "backbone.image_size": size,
    })
    sh(repo, "dvc", "repro", "-q", "evaluate_head")
    commit(repo, f"features at {size} px")
    return repo


def images_kept(repo: Path) -> str:
    """What prepare kept and left out, from the copy's metrics/prepare.json."""
    metrics = json.loads((repo / "metrics" / "prepare.json").read_text())
    return f"{metrics.get('images', '?')} images kept, {metrics.get('left_out', '?')} left out"


@dataclass
class HeadRun:
    """One head experiment both ways: the pipeline's `dvc exp run` (its seconds, and the
    seconds of each stage command it ran) and the notebook script (cold: the whole script;
    warm: the head cell again, TensorFlow up and the features in memory)."""

    pipeline: float
    stages: dict[str, float]  # stage -> seconds of its command (and DVC saving its outputs)
    cold: float
    warm: float


def timed_stages(cwd: Path, *cmd: str) -> tuple[float, dict[str, float]]:
    """Seconds of a `dvc repro`/`dvc exp run` and of each stage command in it: from the
    "> command" line DVC prints before running it to its "Updating lock file" line (the
    command, then DVC hashing and caching its outputs). The rest is DVC's own: its start,
    the experiment's stash and commit, the checks of unchanged stages, the lock writes."""
    marks: list[tuple[float, str]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(list(cmd), cwd=cwd, env=environment(cwd), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    tail: list[str] = []
    for line in proc.stdout:
        marks.append((time.perf_counter(), line.strip()))
        tail = (tail + [line.strip()])[-5:]
    status = proc.wait(timeout=TIMEOUT)
    total = time.perf_counter() - start
    if status != 0:
        raise CommandError(failure(tuple(cmd), status, "\n".join(tail)))
    stages, running, began = {}, None, 0.0
    for at, line in marks:
        if line.startswith("Running stage '"):
            running = line.split("'")[1]
        elif line.startswith("> ") and running:
            began = at
        elif running and began and (line.startswith(("Updating lock file", "Running stage '"))
                                    or "didn't change, skipping" in line):
            stages[running] = at - began
            running, began = None, 0.0
            if line.startswith("Running stage '"):
                running = line.split("'")[1]
    return total, stages


def notebook_run(cwd: Path, data: Path, size: int, dropout: float) -> tuple[float, float]:
    """(cold, warm) seconds of benchmarks/notebook_head.py: the script's wall-clock time
    without its extra warm run, and that warm run of the head cell."""
    start = time.perf_counter()
    out = sh(cwd, sys.executable, str(NOTEBOOK), str(data), "--image-size", str(size),
             "--dropout", str(dropout), "--warm-runs", "1").stdout
    wall = time.perf_counter() - start
    found = re.search(r"cell [\d.]+ s \(first\) ([\d.]+) s \(warm\)", out)
    if found is None:
        raise CommandError(f"notebook_head.py printed no warm cell time: {out[-300:]!r}")
    warm = float(found.group(1))
    return wall - warm, warm


def head_times(repo: Path, data: Path, size: int, runs: int) -> list[HeadRun]:
    """Each head experiment both ways, ``runs`` times.

    Each run sets a new head.dropout (never the committed one, so DVC's run cache cannot
    answer) in both ways; the workspace is reset (untimed) after each experiment."""
    out = []
    for dropout in DROPOUTS[:runs]:
        total, stages = timed_stages(repo, "dvc", "exp", "run", "evaluate_head",
                                     "-S", f"head.dropout={dropout}")
        reset(repo)
        cold, warm = notebook_run(repo, data, size, dropout)
        out.append(HeadRun(total, stages, cold, warm))
    return out


# --- 5: no-op repro --------------------------------------------------------------------------


def sample_setup(dest: Path, *targets: str, tiny: bool = False,
                 changes: dict[str, Any] | None = None) -> Path:
    """Untimed: a copy on the sample data after one `dvc repro [targets]`, committed."""
    repo = project_copy(dest, changes, tiny=tiny)
    sh(repo, "dvc", "repro", "-q", *targets)
    commit(repo, "first repro")
    return repo


def noop_times(repo: Path, runs: int, *targets: str) -> list[float]:
    """Seconds of `dvc repro [targets]` with nothing changed."""
    return [timed(repo, "dvc", "repro", "-q", *targets) for _ in range(runs)]


# --- 8: the export stage -----------------------------------------------------------------------


def export_run(repo: Path) -> tuple[float, dict[str, Any]]:
    """Seconds of `python stages/export.py` in a copy whose `dvc repro export` ran, and what
    it wrote of every format: its check (reports/export.json: parity) with its run facts
    (reports/runs/export.json: size and speed) beside it, as the report's table has them."""
    from pipeline.evaluation.report import export_record

    seconds = timed(repo, sys.executable, "stages/export.py")
    return seconds, export_record(json.loads((repo / "reports/export.json").read_text()),
                                  json.loads((repo / "reports/runs/export.json").read_text()))


# --- 6: peak memory of stages ------------------------------------------------------------------

MEMORY_STAGES = ("prepare", "features", "train_head")


def stage_peaks(repo: Path) -> dict[str, float]:
    """Peak RSS (MB) of the prepare, features and train_head scripts, each run directly
    (`python stages/NAME.py`, not under dvc, whose own memory would mix in) in a copy
    where `dvc repro validate` has made the sample data and the manifest."""
    peaks = {"prepare": peak_rss_mb(repo, sys.executable, "stages/prepare.py")}
    sh(repo, sys.executable, "stages/weights.py")
    for name in MEMORY_STAGES[1:]:
        peaks[name] = peak_rss_mb(repo, sys.executable, f"stages/{name}.py")
    return peaks


# --- 10: the first full repro on flowers -------------------------------------------------------

RUNTIMES = {  # row 10's two settings: the forward path before issue 21, and the default
    "before": {"inference.runtime": "tensorflow", "inference.precision": "float32"},
    "after": {"inference.runtime": "auto", "inference.precision": "auto"},
}


def flowers_setup(dest: Path, data: Path, setting: str, epochs: int | None) -> Path:
    """Untimed: a copy reading ``data`` (duplicates dropped, random weights: nothing can be
    downloaded here) on one of RUNTIMES; ``epochs`` caps every training entry's epochs
    (None: params.yaml's), so that the full DAG can be timed in a session."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    changes: dict[str, Any] = {
        "data.source": str(data.resolve()), "data.images.duplicates": "drop",
        "validate.min_per_class": 2, "backbone.weights": "none", **RUNTIMES[setting],
    }
    if epochs is not None:
        for name in params["finetune"]:
            changes |= {f"finetune.{name}.epochs": epochs,
                        f"finetune.{name}.head_epochs": min(epochs, 1)}
        for name in params["scratch"]:
            changes[f"scratch.{name}.epochs"] = epochs
    return project_copy(dest, changes)


def stage_times(repo: Path) -> tuple[float, dict[str, float]]:
    """Seconds of a whole `dvc repro`, and of each stage it ran: the time from its
    "Running stage" line to the next one (or to the end), read as DVC prints them."""
    marks: list[tuple[str, float]] = []
    start = time.perf_counter()
    proc = subprocess.Popen(["dvc", "repro"], cwd=repo, env=environment(repo), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    tail: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        tail = (tail + [line.strip()])[-5:]
        if line.startswith("Running stage '"):
            marks.append((line.split("'")[1], time.perf_counter()))
    status = proc.wait(timeout=TIMEOUT)
    end = time.perf_counter()
    if status != 0:
        raise CommandError(failure(("dvc", "repro"), status, "\n".join(tail)))
    ends = [t for _, t in marks[1:]] + [end]
    spans = zip(marks, ends, strict=True)
    return end - start, {name: stop - begun for (name, begun), stop in spans}


# --- 11: time to accuracy ----------------------------------------------------------------------

TUTORIAL = Path(__file__).resolve().parent / "tutorial_cnn.py"


def ttacc_setup(dest: Path, data: Path) -> Path:
    """Untimed: a copy reading ``data`` (duplicates dropped) after `dvc repro validate`: the
    manifest whose split both the tutorial CNN and the pipeline's stage use."""
    from pipeline.models.resnet9 import recipe

    repo = project_copy(dest, {
        "data.source": str(data.resolve()), "data.images.duplicates": "drop",
        "validate.min_per_class": 2, "backbone.weights": "none",
        "scratch.resnet9": recipe(),  # the shipped recipe, pasted as a user would
    })
    sh(repo, "dvc", "repro", "-q", "validate")
    commit(repo, "manifest")
    return repo


def tutorial_run(repo: Path) -> tuple[float, dict[str, Any]]:
    """Wall-clock seconds of the whole tutorial CNN process on the copy's split (interpreter
    start to exit: TensorFlow's import, the data, 15 epochs, the test score), and what it
    printed (its test accuracy)."""
    start = time.perf_counter()
    proc = sh(repo, sys.executable, str(TUTORIAL), str(repo))
    seconds = time.perf_counter() - start
    return seconds, json.loads(proc.stdout.strip().splitlines()[-1])


def budget_run(repo: Path, name: str, seconds: float) -> tuple[float, dict, dict]:
    """``scratch.<name>`` with ``budget_seconds`` = ``seconds``: the wall-clock seconds of its
    stage process (`python stages/scratch.py NAME`, start to exit), then, untimed, its
    evaluation; (seconds, its card models/NAME.json, metrics/evaluate/NAME.json)."""
    set_params(repo, {f"scratch.{name}.budget_seconds": round(seconds, 1)})
    wall = timed(repo, sys.executable, "stages/scratch.py", name)
    sh(repo, sys.executable, "stages/evaluate.py", name)
    from pipeline.core import paths

    card = json.loads((repo / paths.model_card(name)).read_text())
    scores = json.loads((repo / paths.evaluation(name)).read_text())
    return wall, card, scores
