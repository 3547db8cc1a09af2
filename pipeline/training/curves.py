"""DVCLive's per-epoch curves, joined across the two phases of a fine-tune."""

from __future__ import annotations

import csv
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
