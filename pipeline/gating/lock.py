"""Is dvc.lock still the truth? The stages whose params, code or committed outputs differ
from what it recorded (``dvc status``).

Drift, stage by stage:
- a changed params section, or a changed dependency that is in git (code, a card);
- an output that differs from its hash in dvc.lock ("modified"): a metrics file edited by
  hand, or left by a run whose lock was not committed. Named file by file.

Not drift: missing data. A fresh clone without DVC's cache (CI's) has none of the cached
files: their outputs read "deleted" or "not in cache", and the dependencies on them
"deleted". The always-changed checks (source, weights, scratch_weights) are not drift
either. A folder dependency that mixes both (``models``: cards in git, ``.keras`` files in
DVC's cache) reads "modified" when its cached files are missing; it is drift then only if
one of its files in git differs from the commit.
"""

from __future__ import annotations

import json
import subprocess

from pipeline.core.errors import PipelineError

MISSING = ("deleted", "not in cache")
FIX = ("run `dvc repro` to bring them (and the stages after them) up to date, then commit "
       "dvc.lock with the outputs; `git checkout -- FILE` undoes an output edited by hand")


def dvc_status() -> dict:
    """``dvc status --json`` as a mapping, or a PipelineError in one line."""
    try:
        done = subprocess.run(["dvc", "status", "--json"], capture_output=True, text=True)
    except FileNotFoundError:
        raise PipelineError("dvc is not on PATH: `dvc status` checks dvc.lock against "
                            "params.yaml, the code and the outputs (activate the project's "
                            "environment)") from None
    if done.returncode != 0:
        said = [line for line in done.stderr.splitlines() if line.strip()]
        raise PipelineError(f"dvc status failed: {said[-1] if said else done.returncode}")
    try:
        status = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        raise PipelineError(f"dvc status --json printed no JSON: {done.stdout[:200]!r}") from None
    if not isinstance(status, dict):
        raise PipelineError(f"dvc status --json printed {type(status).__name__}, not a mapping")
    return status


def stale_stages(status: dict | None = None) -> dict[str, list[str]]:
    """{stage: what differs from dvc.lock}, for every stage that drifted, in dvc.yaml order."""
    status = dvc_status() if status is None else status
    changes = {stage: [c for c in found if isinstance(c, dict)]  # "always changed": no drift
               for stage, found in status.items()}
    missing = [out for found in changes.values() for change in found
               for out, how in change.get("changed outs", {}).items() if how in MISSING]
    drift: dict[str, list[str]] = {}
    for stage, found in changes.items():
        for change in found:
            for dep, how in change.get("changed deps", {}).items():
                if isinstance(how, dict):  # a params file: {"head": "modified"}
                    drift.setdefault(stage, []).append(f"params {', '.join(sorted(how))} in {dep}")
                elif how == "deleted" and _tracked(dep):  # a file of git's, not data
                    drift.setdefault(stage, []).append(f"{dep} deleted")
                elif how == "modified" and _tracked(dep):
                    inside = [out for out in missing if out.startswith(dep.rstrip("/") + "/")]
                    if not inside or _changed_in_git(dep):
                        drift.setdefault(stage, []).append(f"{dep} modified")
            for out, how in change.get("changed outs", {}).items():
                if how not in MISSING:
                    drift.setdefault(stage, []).append(
                        f"output {out} {how}: it differs from dvc.lock (edited by hand, or "
                        "left by a run whose dvc.lock was not kept)")
    return drift


def _changed_in_git(path: str) -> bool:
    """Whether a file in git under ``path`` differs from the commit (or is new to it)."""
    done = subprocess.run(["git", "status", "--porcelain", "--", path], capture_output=True,
                          text=True)
    return bool(done.stdout.strip())


def _tracked(path: str) -> bool:
    done = subprocess.run(["git", "ls-files", "--error-unmatch", "--", path], capture_output=True)
    return done.returncode == 0
