"""A head as an image model: behind its backbone, rebuilt exactly as the features stage
built it. Prediction (``pipeline.evaluation.inference``) and the export
(``pipeline.export.keras_model``) both chain the head this way."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import keras

from pipeline.core.errors import PipelineError
from pipeline.core.params import BackboneParams
from pipeline.core.process_setup import seed_everything
from pipeline.models.backbone import build_backbone
from pipeline.models.classifier import backbone_with_head
from pipeline.models.weights import weights_path


class BackboneMismatch(PipelineError, ValueError):
    """The backbone params.yaml describes is not the one a head's features came from."""


def head_on_backbone(head: keras.Model, source: str | Path, backbone: BackboneParams, seed: int,
                     record: Mapping[str, Any], made: Mapping[str, Any] | None) -> keras.Model:
    """The head of ``source`` as an image model, behind its backbone rebuilt exactly as the
    features stage built it: params.yaml's ``backbone`` section, the weights ``record``
    (data/weights.json) and the same ``seed`` when those weights are random.

    ``made``: the arch and image size the head's features came from (its card's
    ``backbone``, or data/features/info.json), None when unknown; they must be params.yaml's.
    """
    if made is not None and (made.get("arch"), made.get("image_size")) != (
            backbone.arch, backbone.image_size):
        raise BackboneMismatch(
            f"{source} is a head on {made.get('arch')} features at {made.get('image_size')} "
            f"px, params.yaml's backbone is {backbone.arch} at {backbone.image_size} px; run "
            "`dvc repro` first")
    seed_everything(seed)  # as the features stage: random weights are drawn from it
    net = build_backbone(backbone.arch, backbone.image_size, weights_path(record))
    if net.output_shape[-1] != head.input_shape[-1]:
        raise BackboneMismatch(f"the {backbone.arch} backbone gives {net.output_shape[-1]} "
                               f"features, {source} takes {head.input_shape[-1]}; run "
                               "`dvc repro` first")
    return backbone_with_head(net, head)
