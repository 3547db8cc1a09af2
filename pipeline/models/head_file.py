"""The head's ``.keras`` file, written without Keras (and so without starting TensorFlow).

A ``.keras`` file is a zip of ``config.json`` (the model's layers, as
``keras.saving.serialize_keras_object`` gives them), ``metadata.json`` (the Keras version)
and ``model.weights.h5`` (each layer's variables under ``layers/<class in snake case>/vars``).
The head fitted in NumPy (``pipeline.training.softmax``) is saved here as the very file
``pipeline.models.head.build_head`` + ``model.save`` would write for the same weights,
uncompiled (no Keras optimizer trained it), so that ``keras.saving.load_model``, the
fine-tune, export, predict and serve read it as any Keras head.
tests/test_head.py checks the config and the variables against Keras' own save of that
model, and that Keras' loaded model gives the same outputs: a Keras release that changes
its format fails there, not in a user's run.

Written byte for byte the same for the same weights (fixed zip dates, no HDF5 object
times, no save date): a head that did not change does not re-run what depends on it.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import h5py
import numpy as np

from pipeline.runtimes.numpy_head import EPSILON

NAME = "head"  # the model's name, as build_head gives it
EPOCH = (1980, 1, 1, 0, 0, 0)  # zip's earliest date, as Keras gives config.json


def standardize(features: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
    """The head's Normalization layer, in float32 as Keras computes it."""
    scale = np.maximum(np.sqrt(variance.astype(np.float32)), np.float32(EPSILON))
    return (np.asarray(features, np.float32) - mean.astype(np.float32)) / scale


def _dtype(name: str = "float32") -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": name},
            "registered_name": None}


def _tensor(width: int, after: str, **kwargs) -> list[dict]:
    """A layer's inbound node: the (None, width) float32 output of the layer ``after``."""
    return [{"args": [{"class_name": "__keras_tensor__", "config": {
        "shape": [None, width], "dtype": "float32", "keras_history": [after, 0, 0]}}],
        "kwargs": kwargs}]


def _layer(class_name: str, name: str, config: dict, inbound: list, width: int | None
           ) -> dict:
    entry = {"module": "keras.layers", "class_name": class_name, "config": config,
             "registered_name": None}
    if width is not None:
        entry["build_config"] = {"input_shape": [None, width]}
    return entry | {"name": name, "inbound_nodes": inbound}


@dataclass(frozen=True)
class HeadFile:
    """The head's layers' values: the standardisation (float32 mean and variance of the
    training features, as ``build_head`` sets them), the dropout rate and L2 strength of
    its config, and the softmax layer's kernel and bias."""

    mean: np.ndarray  # (d,)
    variance: np.ndarray  # (d,)
    kernel: np.ndarray  # (d, k)
    bias: np.ndarray  # (k,)
    dropout: float
    l2: float

    @property
    def width(self) -> int:
        return int(self.kernel.shape[0])

    @property
    def classes(self) -> int:
        return int(self.kernel.shape[1])

    def trainable_params(self) -> int:
        return int(self.kernel.size + self.bias.size)

    def config(self) -> dict:
        """config.json: build_head's Functional model, as Keras serialises it."""
        d, k = self.width, self.classes
        regularizer = None if not self.l2 else {
            "module": "keras.regularizers", "class_name": "L2",
            "config": {"l2": float(self.l2)}, "registered_name": None}
        layers = [
            {"module": "keras.layers", "class_name": "InputLayer", "config": {
                "batch_shape": [None, d], "dtype": "float32", "sparse": False,
                "ragged": False, "name": "features", "optional": False},
             "registered_name": None, "name": "features", "inbound_nodes": []},
            _layer("Normalization", "standardize", {
                "name": "standardize", "trainable": True, "dtype": _dtype(), "axis": [-1],
                "invert": False, "mean": None, "variance": None},
                _tensor(d, "features"), d),
            _layer("Dropout", "dropout", {
                "name": "dropout", "trainable": True, "dtype": _dtype(),
                "rate": float(self.dropout), "seed": None, "noise_shape": None},
                _tensor(d, "standardize", training=False), None),
            _layer("Dense", "predictions", {
                "name": "predictions", "trainable": True, "dtype": _dtype(), "units": k,
                "activation": "softmax", "use_bias": True,
                "kernel_initializer": {
                    "module": "keras.initializers", "class_name": "GlorotUniform",
                    "config": {"seed": None, "input_axes": None, "output_axes": None},
                    "registered_name": None},
                "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                                     "config": {}, "registered_name": None},
                "kernel_regularizer": regularizer, "bias_regularizer": None,
                "kernel_constraint": None, "bias_constraint": None,
                "quantization_config": None},
                _tensor(d, "dropout"), d),
        ]
        return {"module": "keras.src.models.functional", "class_name": "Functional",
                "config": {"name": NAME, "trainable": True, "layers": layers,
                           "input_layers": ["features", 0, 0],
                           "output_layers": ["predictions", 0, 0]},
                "registered_name": "Functional", "build_config": {"input_shape": None},
                "compile_config": {}}

    def weights(self) -> bytes:
        """model.weights.h5: each layer's variables under Keras' key for it."""
        buffer = io.BytesIO()
        layers = (("input_layer", "features", []),
                  ("normalization", "standardize",
                   [self.mean.astype("float32"), self.variance.astype("float32"),
                    np.int64(0)]),  # Normalization's count: 0 when not adapt()-ed
                  ("dropout", "dropout", []),
                  ("dense", "predictions",
                   [self.kernel.astype("float32"), self.bias.astype("float32")]))
        with h5py.File(buffer, "w") as store:
            for key, name, values in layers:
                group = store.create_group(f"layers/{key}/vars")
                group.attrs["name"] = name
                for i, value in enumerate(values):
                    group.create_dataset(str(i), data=value, track_times=False)
            store.create_group("vars").attrs["name"] = NAME
        return buffer.getvalue()

    def save(self, path: str | Path) -> None:
        """The .keras file at ``path`` (as ``keras.Model.save``: the caller makes it atomic)."""
        members = {
            "metadata.json": json.dumps({"keras_version": version("keras")}).encode(),
            "config.json": json.dumps(self.config()).encode(),
            "model.weights.h5": self.weights(),
        }
        with zipfile.ZipFile(path, "w") as archive:
            for name, data in members.items():
                archive.writestr(zipfile.ZipInfo(name, EPOCH), data)
