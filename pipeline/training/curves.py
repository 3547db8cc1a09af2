"""DVCLive's per-epoch curves, joined across the two phases of a fine-tune."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path


def append_curves(src: Path, dst: Path, offset: int) -> None:
    """Append the DVCLive curves of ``src`` to those of ``dst``, their steps shifted by ``offset``.

    ``training.fit`` opens a fresh DVCLive ``Live``, which wipes its dir, and DVCLive's own
    resume cannot follow a one-epoch run (it reads the last step, 0, as "nothing logged"
    and restarts at 0). So the second phase logs apart and its rows are appended here,
    making each plots file one curve over both phases.
    """
    for tsv in sorted((src / "plots" / "metrics").rglob("*.tsv")):
        with tsv.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        target = dst / tsv.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        fresh = not target.exists()
        with target.open("a", newline="", encoding="utf-8") as fh:
            if not rows:
                continue
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t",
                                    lineterminator="\n")
            if fresh:
                writer.writeheader()
            for row in rows:
                writer.writerow(row | {"step": int(row["step"]) + offset})
    if (src / "metrics.json").exists():  # DVCLive's last-epoch summary (not tracked)
        shutil.copyfile(src / "metrics.json", dst / "metrics.json")


def keep_curves(live_dir: Path, kept: Path, epochs: int | None = None) -> None:
    """Copy ``live_dir``'s curves to ``kept`` or, with ``epochs``, back: ``kept`` to
    ``live_dir`` (replacing it), only the rows of the first ``epochs`` epochs.

    A backup keeps a copy of the curves because `dvc repro` deletes a stage's outputs
    before it runs it, the DVCLive folder among them: without the copy a resumed run's
    curves would start at the epoch it resumed at. Each kept file is replaced whole
    (``os.replace``), so a kill while copying leaves every file complete; rows of an epoch
    logged but not checkpointed before the kill are dropped on the way back."""
    if epochs is None:
        for src in (p for p in live_dir.rglob("*") if p.is_file()):
            dst = kept / src.relative_to(live_dir)
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.tmp")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)
        return
    if not kept.is_dir():
        return
    shutil.rmtree(live_dir, ignore_errors=True)
    shutil.copytree(kept, live_dir, ignore=shutil.ignore_patterns(".*.tmp"))
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        with tsv.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        if not rows:
            continue
        with tsv.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter="\t",
                                    lineterminator="\n")
            writer.writeheader()
            writer.writerows(row for row in rows if int(row["step"]) < epochs)
