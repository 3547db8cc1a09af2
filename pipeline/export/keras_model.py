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
from pipeline.core.errors import PipelineError
from pipeline.core.io import read_json
from pipeline.core.params import BackboneParams
from pipeline.data.input import CARD_KEY, orientation_of
from pipeline.models.saving import load_model
from pipeline.models.temperature import with_temperature
from pipeline.training.card import IMAGE_INPUT


def temperature_of(name: str) -> float:
    """The temperature the evaluate stage fitted for ``name`` (1.0 when it fitted none)."""
    return float(read_json(paths.METRICS / "evaluate" / f"{name}.json").get("temperature", 1.0))


def image_network(name: str, backbone_params: BackboneParams, seed: int,
                  temperature: float = 1.0) -> tuple[keras.Model, dict]:
    """``models/<name>.keras`` as an image model with ``temperature``, and its card."""
    card = read_json(paths.MODELS / f"{name}.json")
    source = paths.MODELS / f"{name}.keras"
    network = load_model(source)
    if card["input"] == "features":
        from pipeline.core.runtime import seed_everything
        from pipeline.models.backbone import build_backbone
        from pipeline.models.classifier import backbone_with_head
        from pipeline.models.weights import weights_path

        made = card["backbone"]
        if (made["arch"], made["image_size"]) != (backbone_params.arch,
                                                  backbone_params.image_size):
            raise PipelineError(f"{source} was trained on {made} features, params.yaml's "
                                f"backbone is {backbone_params}; run `dvc repro`")
        seed_everything(seed)  # as the features stage: random weights come from it
        backbone = build_backbone(made["arch"], made["image_size"],
                                  weights_path(read_json(paths.WEIGHTS_RECORD)))
        network = backbone_with_head(backbone, network)
        card = card | {"input": "image", "image_size": made["image_size"],
                       "preprocessing": IMAGE_INPUT,
                       "exported": f"{made['arch']} backbone + {source}"}
    # Always written: predict and serve decode an exported model as its card says.
    card = {"model": name, **card, CARD_KEY: orientation_of(card), "temperature": temperature}
    return with_temperature(network, temperature), card
