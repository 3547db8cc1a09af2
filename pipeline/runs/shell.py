"""The one shell every training stage runs its recipe in (train_head, finetune@, scratch@).

It places the run (``placement.place``: strategy and precision, before TensorFlow runs
anything), seeds, names the run's backup and hands the recipe that backup for its fits to
resume from (``resume.resuming``), then lets only the chief write: a worker says so in one line and
returns, the chief saves the model, its card and its metrics (``save.save_trained``).
A recipe without TensorFlow (the head's L-BFGS fit) runs in :func:`run_numpy`: no
placement, no backup (it takes seconds), the same chief rule and the same outputs.
Importing this module starts no TensorFlow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.params import Params
from pipeline.core.process_setup import seed_everything
from pipeline.runs.placement import Placement, is_chief, place, task

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from pipeline.runs.backup import Key
    from pipeline.runs.resume import Resume
    from pipeline.runs.save import Outcome


@dataclass(frozen=True)
class Run:
    """What a recipe gets from the shell: where it runs, its seed and the backup its fits
    resume from."""

    placement: Placement
    seed: int
    resume: Resume | None  # None: the run keeps no backup

    def chief_only(self, path: Path) -> Path | None:
        """``path`` on the chief, None on the other workers: only the chief writes (curves,
        pictures)."""
        return path if self.placement.chief else None


def run(label: str, name: str, params: Params, outcome: Callable[[Run], Outcome],
        backup: Key | None = None) -> None:
    """Run the stage ``label``: ``outcome`` trains by its recipe and gives what to save (the
    heavy imports inside it, after the placement), saved as the model ``name`` by the
    chief. ``backup``: what the run reads, naming the folder a killed run resumes from
    (None: no backup, the run starts afresh)."""
    placement = place(params.distribute)
    seed_everything(params.seed)
    # The training code after place(): MultiWorkerMirroredStrategy comes before anything.
    from pipeline.runs.backup import backup_folder
    from pipeline.runs.resume import resuming
    from pipeline.runs.save import save_trained

    folder = None if backup is None else placement.backup_dir(
        backup_folder(label.replace("@", "-"), backup))
    with resuming(folder) as resume:
        done = outcome(Run(placement, params.seed, resume))
    if not placement.chief:
        log.info(f"{label}: worker {placement.worker} done; the chief writes the outputs")
        return
    save_trained(name, done, placement.label(), placement.replicas)


def run_numpy(label: str, name: str, outcome: Callable[[], Outcome]) -> None:
    """Run the stage ``label`` whose recipe needs no TensorFlow: ``outcome`` fits in this
    process and gives what to save as the model ``name``. Under a cluster (``TF_CONFIG``)
    the chief alone fits and writes; the other workers have nothing to do."""
    from pipeline.runs.save import save_trained

    task_type, index, cluster = task()
    if not is_chief(task_type, index, cluster):
        log.info(f"{label}: worker {index} done; the chief writes the outputs")
        return
    save_trained(name, outcome(), "numpy x1 float32", 1)
