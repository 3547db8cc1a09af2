"""A trained model's card (``models/<name>.json``) and its few metrics.

The card travels with the model: what it takes (images of ``image_size`` px, raw RGB
in [0, 255], or backbone features), its class names in output order, and how its
training went. The metrics file (``metrics/train/<name>.json``) holds only what people
compare runs on, so ``dvc exp show`` stays readable whatever the number of classes,
and the machine that trained it (pipeline.core.machine), so a change has a visible cause.
"""

from __future__ import annotations

from typing import Any

from pipeline.core import machine, paths
from pipeline.core.io import write_json

IMAGE_INPUT = ("raw RGB pixels in [0, 255], resized to image_size x image_size (bilinear, "
               "antialiased) by pipeline.data.input.load_image; the model normalises them itself")
METRIC_KEYS = ("val_accuracy", "train_seconds", "distribute")


def write_card(name: str, card: dict[str, Any]) -> None:
    found = machine.describe()
    write_json(paths.MODELS / f"{name}.json", card | {"machine": found})
    write_json(paths.METRICS / "train" / f"{name}.json",
               {k: card[k] for k in METRIC_KEYS if k in card} | {"machine": machine.record(found)})


