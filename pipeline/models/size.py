"""How big a network is: its parameters and the bytes of its weights, every variable
counted (trainable or not: BatchNorm's moving statistics ship too).

``of_network`` counts a Keras model; ``of_file`` a ``.keras`` file without starting
TensorFlow (the head's evaluation runs in NumPy), from its ``model.weights.h5``, leaving
out optimizer state (a compiled model, or a compiled sub-model, saves it beside the
weights; it never ships in a forward pass).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError


def of_network(model) -> tuple[int, int]:
    """(parameters, bytes of weights) of a Keras model."""
    params = sum(int(np.prod(w.shape)) for w in model.weights)
    size = sum(int(np.prod(w.shape)) * np.dtype(w.dtype).itemsize for w in model.weights)
    return params, size


def of_file(model_file: str | Path) -> tuple[int, int]:
    """(parameters, bytes of weights) of the model saved in ``model_file`` (.keras)."""
    import h5py

    try:
        with zipfile.ZipFile(model_file) as archive:
            weights = io.BytesIO(archive.read("model.weights.h5"))
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise PipelineError(f"{model_file}: not a readable .keras file ({err})") from None
    params = size = 0
    with h5py.File(weights, "r") as store:
        def add(name: str, item: object) -> None:
            nonlocal params, size
            if isinstance(item, h5py.Dataset) and "optimizer" not in name.split("/"):
                params += int(item.size)
                size += int(item.size) * item.dtype.itemsize

        store.visititems(add)
    return params, size
