"""Loading the pipeline's saved models with Keras' safe mode on.

Safe mode refuses arbitrary code in a ``.keras`` file; the pipeline's own layers
(the ResNet preprocessing, BiT's weight-standardised convolution, the mirror of test-time
flip averaging) are registered serializables, so importing their modules is all loading
them needs. A file Keras cannot load is one :class:`ModelFileError` line naming it and
why: Keras' own messages mislead (random or truncated bytes give "File not found" for a
file that exists).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras

import pipeline.models.backbone  # noqa: F401 - registers ResNetPreprocess
import pipeline.models.bit  # noqa: F401 - registers StandardizedConv2D
import pipeline.models.flip  # noqa: F401 - registers HorizontalFlip
import pipeline.models.temperature  # noqa: F401 - registers Temperature
from pipeline.core.errors import PipelineError


class ModelFileError(PipelineError):
    """A model file that cannot be loaded; the message starts with its path."""


def load_model(path: str | Path) -> keras.Model:
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: " + ("not a file" if path.exists() else "not found"))
    if path.suffix == ".keras" and not zipfile.is_zipfile(path):
        raise ModelFileError(f"{path}: not a Keras model file (a .keras file is a zip "
                             "archive; this one is not, or is cut short)")
    try:
        return keras.models.load_model(path)  # safe_mode stays on
    except Exception as err:  # Keras raises ValueError, KeyError, TypeError, OSError, ...
        raise ModelFileError(f"{path}: {_why(err)}") from None


def _why(err: Exception) -> str:
    text = str(err).strip().strip('"')
    if "safe_mode" in text:  # a Lambda layer or another carrier of Python code
        return ("it holds Python code (a Lambda layer), which loading refuses: it would run "
                "on load; the pipeline's own models have none")
    first = text.splitlines()[0].split(". ")[0] if text else type(err).__name__
    return f"Keras cannot load it ({first[:200]})"
