"""The `dvc exp show` recipe of docs/experiments.md fits a 120-column terminal and shows
every model's test accuracy and the params that changed (run as documented)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from helpers import ROOT, sh

DOC = ROOT / "docs" / "experiments.md"


def recipe() -> str:
    """The shell command under the page's `<!-- exp-show-recipe -->` marker."""
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- exp-show-recipe -->\s*```(?:sh|console)?\n(.*?)```", text, re.S)
    assert block, f"{DOC}: no code block after <!-- exp-show-recipe -->"
    return block[1]


def test_the_recipe_fits_120_columns_with_accuracies_and_changed_params(tmp_path):
    """After a run that re-ran every stage (an experiment whose export and report re-ran;
    an own-data run): every hash in dvc.lock changed, and the recipe still shows the
    accuracies and the changed params alone, not a column per file a stage depends on."""
    # The project's own params, dvc.yaml, dvc.lock and committed metrics in a repository
    # of their own; the workspace then changes two params, the metrics and the hash of
    # every dependency and output (as such a run does).
    for name in ("params.yaml", "dvc.yaml", "dvc.lock", "metrics"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name)
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, "dvc", "init", "-q")
    sh(tmp_path, "git", "add", "-A")
    sh(tmp_path, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["head"]["dropout"] = 0.45
    params["data"]["source"] = "/home/alice/photos/flowers-2024"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    lock = tmp_path / "dvc.lock"
    hashes = re.sub(r"\b([0-9a-f]{32})\b", lambda m: m[1][::-1], lock.read_text())
    assert hashes != lock.read_text()
    lock.write_text(hashes)
    wrn = tmp_path / "metrics/evaluate/wrn.json"
    wrn.write_text(wrn.read_text().replace('"accuracy": ', '"accuracy": 0.125, "was": ', 1))

    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]])  # dvc
    out = subprocess.run(["bash", "-c", "set -o pipefail\n" + recipe()], cwd=tmp_path,
                         env=os.environ | {"COLUMNS": "120", "PATH": path},
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert all(len(line) <= 120 for line in lines), out.stdout
    header = lines[0].split()
    assert {"head", "resnet50", "wrn", "head.dropout", "data.source"} <= set(header), out.stdout
    workspace = next(line.split() for line in lines if " workspace " in f" {line} ")

    def cell(row: list[str], column: str) -> str:  # from the right: Experiment may be empty
        return row[len(row) - len(header) + header.index(column)]

    assert cell(workspace, "head.dropout") == "0.45" and cell(workspace, "wrn") == "0.125"
    assert cell(workspace, "data.source") == "/home/alice/photos/flowers-2024"
    # No other metric, no hash column (a path: data/manifest.csv, models/head.json, ...).
    assert set(header) == {"Experiment", "rev", "seed", "head", "resnet50", "wrn",
                           "head.dropout", "data.source"}, header
