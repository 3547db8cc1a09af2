"""The one pixel rule: an image whose width x height is over ``max_pixels`` is a
decompression bomb, refused from its header before any pixel is decoded.

prepare (pipeline.data.images), predict (pipeline.evaluation.inference), the server
(pipeline.serving.uploads) and the export's check images (pipeline.export.samples) all
call :func:`check_pixels`, so they refuse the same images in the same words. The limit is
params.yaml's ``data.images.max_pixels``; an exported model's card records the value its
data passed (``max_pixels``), which predict and serve follow wherever the model goes
(see :func:`limit_of`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pipeline.core.errors import PipelineError

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's own Image.MAX_IMAGE_PIXELS
CARD_KEY = "max_pixels"  # in a model's card: the limit its training data passed
SETTING = "data.images.max_pixels"
_PILLOW_COUNT = re.compile(r"\((\d+) pixels\)")


class TooManyPixels(PipelineError):
    """An image over the pixel limit; ``setting`` names where the limit came from."""

    def __init__(self, pixels: int | None, max_pixels: int, setting: str = SETTING):
        count = f"{pixels:,} pixels" if pixels is not None else "too many pixels"
        super().__init__(f"decompression bomb: {count}, over the {max_pixels:,}-pixel cap "
                         f"({setting})")
        self.pixels, self.max_pixels = pixels, max_pixels


def check_pixels(pixels: int, max_pixels: int, setting: str = SETTING) -> int:
    """``pixels`` (width x height), or TooManyPixels when it is over ``max_pixels``."""
    if pixels > max_pixels:
        raise TooManyPixels(pixels, max_pixels, setting)
    return pixels


def bomb_pixels(err: Exception) -> int | None:
    """The pixel count in Pillow's own DecompressionBombError (or Warning), when it says."""
    found = _PILLOW_COUNT.search(str(err))
    return int(found.group(1)) if found else None


def header_pixels(source: str | Path) -> int | None:
    """width x height from a file's header, no pixel decoded, whatever Pillow's own bomb
    guard is set to; None when Pillow cannot identify the file (its decoder then says
    what is wrong with it)."""
    from PIL import Image, UnidentifiedImageError

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(source) as img:
                return img.width * img.height
        except Image.DecompressionBombError as err:  # over twice Pillow's limit
            return bomb_pixels(err)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
            return None


def limit_of(card: Mapping[str, Any] | None, params_limit: int | None) -> tuple[int, str]:
    """(the limit, the setting it came from) for a model: its card's ``max_pixels`` (what
    its training data passed, which a params.yaml elsewhere may not say), else params.yaml's
    ``data.images.max_pixels``, else Pillow's default."""
    value = (card or {}).get(CARD_KEY)
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{CARD_KEY}` must be a positive whole number (got {value!r})")
        return value, f"the model card's {CARD_KEY}"
    if params_limit is not None:
        return params_limit, f"params.yaml's {SETTING}"
    return DEFAULT_MAX_PIXELS, "Pillow's default"
