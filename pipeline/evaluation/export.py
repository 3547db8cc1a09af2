"""The recommended model as one stable artifact: ``models/best/model.keras`` and its card.

Whatever model the report recommends, the artifact takes raw RGB images: the head is
exported chained behind the backbone that made its features (same architecture, weights
and seed), so ``python -m pipeline.predict`` and ``dvc artifacts get`` users need
nothing else. The card names the source model, its classes and its preprocessing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pipeline.core import paths
from pipeline.core.io import atomic_dir, read_json, write_json
from pipeline.core.params import BackboneParams
from pipeline.training.card import IMAGE_INPUT


def export_best(name: str, backbone_params: BackboneParams, seed: int,
                target: Path = paths.BEST) -> dict:
    """Write ``target``/model.keras and card.json for the model ``name``; return the card."""
    card = read_json(paths.MODELS / f"{name}.json")
    source = paths.MODELS / f"{name}.keras"
    with atomic_dir(target) as tmp:
        if card["input"] == "features":
            from pipeline.core.runtime import seed_everything
            from pipeline.models.backbone import build_backbone
            from pipeline.models.classifier import backbone_with_head
            from pipeline.models.saving import load_model
            from pipeline.models.weights import weights_path

            made = card["backbone"]
            if (made["arch"], made["image_size"]) != (backbone_params.arch,
                                                      backbone_params.image_size):
                raise ValueError(f"{source} was trained on {made} features, params.yaml's "
                                 f"backbone is {backbone_params}; run `dvc repro`")
            seed_everything(seed)  # as the features stage: random weights come from it
            backbone = build_backbone(made["arch"], made["image_size"],
                                      weights_path(read_json(paths.WEIGHTS_RECORD)))
            backbone_with_head(backbone, load_model(source)).save(tmp / "model.keras")
            card = card | {"input": "image", "image_size": made["image_size"],
                           "preprocessing": IMAGE_INPUT,
                           "exported": f"{made['arch']} backbone + {source}"}
        else:
            shutil.copyfile(source, tmp / "model.keras")
        card = {"model": name, **card}
        write_json(tmp / "card.json", card)
    return card
