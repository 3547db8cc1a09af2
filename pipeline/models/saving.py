"""Loading the pipeline's saved models with Keras' safe mode on.

Safe mode refuses arbitrary code in a ``.keras`` file; the pipeline's own layers
(the ResNet preprocessing, BiT's weight-standardised convolution, the mirror of test-time
flip averaging) are registered serializables, so importing their modules is all loading
them needs.
"""

from __future__ import annotations

from pathlib import Path

import keras

import pipeline.models.backbone  # noqa: F401 - registers ResNetPreprocess
import pipeline.models.bit  # noqa: F401 - registers StandardizedConv2D
import pipeline.models.flip  # noqa: F401 - registers HorizontalFlip
import pipeline.models.temperature  # noqa: F401 - registers Temperature


def load_model(path: str | Path) -> keras.Model:
    return keras.models.load_model(path)  # safe_mode stays on
