"""What a trained model's card (``models/<name>.json``, the export's ``card.json``) says
about how its inputs are made. No TensorFlow here: the NumPy head's evaluation reads it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

CARD_KEY = "exif_orientation"  # in a model's card: the decode it was trained on


def orientation_of(card: Mapping[str, Any]) -> bool:
    """Whether the model of ``card`` was trained on photos turned by their EXIF tag: the
    card's ``exif_orientation``; True for a card from before the key (every model then
    was trained with the turn). Predict, serve and the export decode by it."""
    value = card.get(CARD_KEY, True)
    if not isinstance(value, bool):
        raise ValueError(f"model card: {CARD_KEY} must be true or false (got {value!r})")
    return value
