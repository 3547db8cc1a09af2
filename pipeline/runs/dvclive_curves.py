"""DVCLive's per-epoch curves: joined across the two phases of a fine-tune, and kept beside a
backup for a resumed run (``pipeline.runs.resume``)."""

from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import keras


def _rows(tsv: Path) -> list[dict[str, str]]:
    with tsv.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _write_rows(tsv: Path, fields: list[str], rows: list[dict], mode: str, header: bool
                ) -> None:
    with tsv.open(mode, newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, delimiter="\t", lineterminator="\n")
        if header:
            writer.writeheader()
        writer.writerows(rows)


def append_curves(src: Path, dst: Path, offset: int) -> None:
    """Append the DVCLive curves of ``src`` to those of ``dst``, their steps shifted by ``offset``.

    ``pipeline.training.fit`` opens a fresh DVCLive ``Live``, which wipes its dir, and
    DVCLive's own resume cannot follow a one-epoch run (it reads the last step, 0, as
    "nothing logged" and restarts at 0). So the second phase logs apart and its rows are
    appended here, making each plots file one curve over both phases.
    """
    for tsv in sorted((src / "plots" / "metrics").rglob("*.tsv")):
        rows = _rows(tsv)
        target = dst / tsv.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not rows:
            target.touch()
            continue
        shifted = [row | {"step": int(row["step"]) + offset} for row in rows]
        _write_rows(target, list(rows[0]), shifted, "a", header=not target.exists())
    if (src / "metrics.json").exists():  # DVCLive's last-epoch summary (not tracked)
        shutil.copyfile(src / "metrics.json", dst / "metrics.json")


def kept_curves(backup_dir: Path) -> Path:
    """Where a backup keeps its run's curves: beside it, as BackupAndRestore removes its
    own folder at the end of every fit."""
    return backup_dir.with_name(f"{backup_dir.name}-curves")


def save_curves(live_dir: Path, kept: Path) -> None:
    """Copy ``live_dir``'s curves to ``kept``, beside a backup: `dvc repro` deletes a
    stage's outputs before it runs it, the DVCLive folder among them, and without the copy
    a resumed run's curves would start at the epoch it resumed at. Each file is replaced
    whole (``os.replace``), so a kill while copying leaves every kept file complete."""
    for src in (p for p in live_dir.rglob("*") if p.is_file()):
        dst = kept / src.relative_to(live_dir)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)


def restore_curves(kept: Path, live_dir: Path, epochs: int) -> None:
    """Put the curves ``save_curves`` kept back in ``live_dir`` (replacing it), the rows of
    the first ``epochs`` epochs only: an epoch logged but not checkpointed before the kill
    is redone."""
    if not kept.is_dir():
        return
    shutil.rmtree(live_dir, ignore_errors=True)
    shutil.copytree(kept, live_dir, ignore=shutil.ignore_patterns(".*.tmp"))
    for tsv in (live_dir / "plots" / "metrics").rglob("*.tsv"):
        rows = _rows(tsv)
        if rows:
            kept_rows = [row for row in rows if int(row["step"]) < epochs]
            _write_rows(tsv, list(rows[0]), kept_rows, "w", header=True)


class KeepCurves(keras.callbacks.Callback):
    """After DVCLive logs an epoch, a copy of the curves beside the backup (see
    :func:`save_curves`)."""

    def __init__(self, live_dir: Path, kept: Path):
        super().__init__()
        self.live_dir, self.kept = live_dir, kept

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        save_curves(self.live_dir, self.kept)
