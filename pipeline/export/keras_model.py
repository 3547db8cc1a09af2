"""The recommended model as one image-to-probabilities Keras network, and its card.

Whatever model the report recommends, the export takes raw RGB images: the head is
chained behind the backbone that made its features (same architecture, weights and
seed), so no runtime needs this repository's feature cache. The evaluate stage's
temperature (``metrics/evaluate/<model>.json``'s ``temperature``, 1.0 when absent: the
:class:`~pipeline.models.trained.TrainedModel`'s) is baked in, so every format gives the
calibrated probabilities.
"""

from __future__ import annotations

from dataclasses import replace

from pipeline.core import paths
from pipeline.core.io import read_json
from pipeline.core.params import BackboneParams
from pipeline.core.pixels import CARD_KEY as PIXELS_KEY
from pipeline.core.pixels import DEFAULT_MAX_PIXELS
from pipeline.models.card import CARD_KEY, orientation_of
from pipeline.models.classifier import IMAGE_INPUT
from pipeline.models.trained import TrainedModel


def image_network(name: str, backbone_params: BackboneParams, seed: int,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> TrainedModel:
    """``models/<name>.keras`` as an image model with its temperature, and the card it
    ships with, which records ``max_pixels`` (data.images.max_pixels: the pixel rule its
    data passed)."""
    model = TrainedModel.named(name)
    card = model.card
    if card["input"] == "features":
        made = card["backbone"]
        model = model.on_backbone(backbone_params, seed, read_json(paths.WEIGHTS_RECORD), made)
        card = card | {"input": "image", "image_size": made["image_size"],
                       "preprocessing": IMAGE_INPUT,
                       "exported": f"{made['arch']} backbone + {model.source}"}
    # Always written: predict and serve decode (and refuse) images as its card says.
    card = {"model": name, **card, CARD_KEY: orientation_of(card), PIXELS_KEY: max_pixels,
            "temperature": model.temperature}
    return replace(model.calibrated(), card=card)
