"""The recommended model as one image-to-probabilities Keras network, and its card.

Whatever model the report recommends, the export takes raw RGB images: the head is
chained behind the backbone that made its features (same architecture, weights and
seed), so no runtime needs this repository's feature cache. The evaluate stage's
temperature (``metrics/evaluate/<model>.json``'s ``temperature``, 1.0 when absent) is
baked in, so every format gives the calibrated probabilities.
"""

from __future__ import annotations

import keras

from pipeline.core import paths
from pipeline.core.io import read_json
from pipeline.core.params import BackboneParams
from pipeline.core.pixels import CARD_KEY as PIXELS_KEY
from pipeline.core.pixels import DEFAULT_MAX_PIXELS
from pipeline.models.card import CARD_KEY, orientation_of
from pipeline.models.classifier import IMAGE_INPUT
from pipeline.models.rebuild import head_on_backbone
from pipeline.models.saving import load_model
from pipeline.models.temperature import with_temperature


def fitted_temperature(name: str) -> float:
    """The temperature the evaluate stage fitted for ``name`` (1.0 when it fitted none)."""
    return float(read_json(paths.METRICS / "evaluate" / f"{name}.json").get("temperature", 1.0))


def image_network(name: str, backbone_params: BackboneParams, seed: int,
                  temperature: float = 1.0, max_pixels: int = DEFAULT_MAX_PIXELS
                  ) -> tuple[keras.Model, dict]:
    """``models/<name>.keras`` as an image model with ``temperature``, and its card, which
    records ``max_pixels`` (data.images.max_pixels: the pixel rule its data passed)."""
    card = read_json(paths.MODELS / f"{name}.json")
    source = paths.MODELS / f"{name}.keras"
    network = load_model(source)
    if card["input"] == "features":
        made = card["backbone"]
        network = head_on_backbone(network, source, backbone_params, seed,
                                   read_json(paths.WEIGHTS_RECORD), made)
        card = card | {"input": "image", "image_size": made["image_size"],
                       "preprocessing": IMAGE_INPUT,
                       "exported": f"{made['arch']} backbone + {source}"}
    # Always written: predict and serve decode (and refuse) images as its card says.
    card = {"model": name, **card, CARD_KEY: orientation_of(card), PIXELS_KEY: max_pixels,
            "temperature": temperature}
    return with_temperature(network, temperature), card
