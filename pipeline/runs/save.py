"""What a training run writes: the model (``models/<name>.keras``), its card
(``models/<name>.json``), its result (``metrics/train/<name>.json``) and its run facts
(``reports/runs/train/<name>.json``), each file written atomically, on the chief only
(``pipeline.runs.shell``).

The card travels with the model: what it takes (images of ``image_size`` px, raw RGB
in [0, 255], or backbone features), its class names in output order, how its training
went and the machine that trained it (pipeline.core.machine). The metrics file holds only
the validation accuracy, a result: the same on every run of one commit on one machine, so
``dvc exp show`` stays readable whatever the number of classes and `dvc metrics diff`
shows what changed. The seconds, the speed, where it ran (strategy, replicas) and the
machine move from run to run: run facts (pipeline.core.run_facts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pipeline.core import machine, paths, run_facts
from pipeline.core.io import atomic_path, write_json
from pipeline.runs.budget import Budget

log = logging.getLogger(__name__)

METRIC_KEYS = ("val_accuracy",)
# How the run went, not what it found: a resumed run says after which epoch.
RUN_FACT_KEYS = ("train_seconds", "train_images_per_second", "epochs_run", "stopped_by",
                 "budget", "resumed_after_epoch", "distribute", "replicas")


class Saveable(Protocol):
    """A ``keras.Model``, or the head fitted in NumPy (``pipeline.models.head_file``),
    which writes the same .keras file without starting TensorFlow."""

    def save(self, filepath: str | Path) -> None: ...


@dataclass(frozen=True)
class Outcome:
    """What a run saves, as its recipe gives it: the model as it goes to disk and its card
    (this module adds where the run ran and the machine)."""

    model: Saveable
    card: dict[str, Any]
    budget: Budget | None = None  # the stage's time budget: the card says what it used


def save_trained(name: str, outcome: Outcome, distribute: str, replicas: int
                 ) -> dict[str, Any]:
    """Write the model, its card, its metrics and its run facts; print one line. The card
    it wrote. ``distribute`` and ``replicas``: where it trained (``Placement.label()``, its
    replicas)."""
    model_file = paths.model_file(name)
    with atomic_path(model_file, suffix=".keras") as tmp:
        outcome.model.save(tmp)
    card = {"name": name} | outcome.card | {"distribute": distribute, "replicas": replicas}
    if outcome.budget is not None and "budget" in card:
        # The whole stage so far (its process's start to the model saved): what the
        # budget covers, bar the card's own write and the exit.
        card["budget"] = card["budget"] | {"used_seconds": round(outcome.budget.elapsed(), 1)}
    found = machine.describe()
    write_json(paths.model_card(name), card | {"machine": found})
    write_json(paths.train_metrics(name),
               {k: card[k] for k in METRIC_KEYS if k in card})
    run_facts.write(f"train/{name}", {k: card[k] for k in RUN_FACT_KEYS if k in card}, found)
    log.info(f"{name}: best epoch {card['best_epoch']}/{card['epochs_run']} (stopped by "
             f"{card.get('stopped_by', 'epochs')}), "
             f"val accuracy {card.get('val_accuracy')}, {card['train_seconds']} s, "
             f"{card['train_images_per_second']} img/s -> {model_file}")
    return card
