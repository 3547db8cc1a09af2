"""The head's forward pass in NumPy, from its .keras file, without starting TensorFlow.

The head is a standardisation, a dropout (nothing at inference), one softmax Dense layer
and possibly a Temperature layer: a few hundred microseconds of NumPy, where importing
TensorFlow and Keras to run it takes seconds (most of evaluate_head's time). A .keras file
is a zip of ``config.json`` (the layers, in order) and ``model.weights.h5`` (their
variables, under Keras' own key for each layer: its class in snake case, ``_1``, ``_2``
... for repeats). Any layer this module does not know makes :func:`head_probabilities`
raise :class:`UnsupportedHead`, and the caller runs Keras instead.
tests/test_runtimes.py checks it against Keras' output.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from pipeline.core.errors import PipelineError

EPSILON = 1e-7  # keras.backend.epsilon(): Normalization's floor under the std deviation
TINY = 1.1754944e-38  # pipeline.models.temperature's floor under p before the log
MODELS = ("Functional", "Model", "Sequential")


class UnsupportedHead(PipelineError, ValueError):
    """A layer or layout this NumPy forward pass does not reproduce (Keras must run it)."""


def _snake(name: str) -> str:
    # keras.src.utils.naming.to_snake_case: the key Keras gives a layer's weights.
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda z: z, "softmax": _softmax,
}


def _vars(group, key: str, count: int) -> list[np.ndarray]:
    try:
        found = group["layers"][key]["vars"]
        return [np.asarray(found[str(i)]) for i in range(count)]
    except KeyError:
        raise UnsupportedHead(f"no weights for layer {key!r}") from None


def _layer(spec: dict, group, key: str) -> Callable[[np.ndarray], np.ndarray]:
    """One layer's inference function, its variables read from ``group``."""
    kind, cfg = spec["class_name"], spec["config"]
    if kind in ("InputLayer", "Dropout"):
        return lambda x: x
    if kind == "Normalization":
        if cfg.get("invert") or list(cfg.get("axis") or [-1]) != [-1]:
            raise UnsupportedHead("Normalization other than standardising the last axis")
        if cfg.get("mean") is not None:
            mean, var = (np.asarray(cfg[k], np.float32) for k in ("mean", "variance"))
        else:
            mean, var = _vars(group, key, 2)
        scale = np.maximum(np.sqrt(var.astype(np.float32)), np.float32(EPSILON))
        return lambda x: (x - mean) / scale
    if kind == "Dense":
        activation = ACTIVATIONS.get(cfg.get("activation") or "linear")
        if activation is None:
            raise UnsupportedHead(f"Dense activation {cfg.get('activation')!r}")
        kernel, *bias = _vars(group, key, 2 if cfg.get("use_bias", True) else 1)
        return lambda x: activation(x @ kernel + (bias[0] if bias else 0))
    if kind == "Temperature":
        t = np.float32(cfg["temperature"])
        return lambda p: _softmax(np.log(np.maximum(p, np.float32(TINY))) / t)
    if kind in MODELS:
        return _chain(cfg, group["layers"][key])
    raise UnsupportedHead(f"layer {cfg.get('name')!r} of class {kind}")


def _chain(config: dict, group) -> Callable[[np.ndarray], np.ndarray]:
    """A model whose layers form one chain, each taking the previous one's output."""
    layers, seen, steps = config["layers"], {}, []
    for i, spec in enumerate(layers):
        inbound = spec.get("inbound_nodes") or []
        if i and (len(inbound) != 1 or len(inbound[0]["args"]) != 1
                  or inbound[0]["args"][0]["config"]["keras_history"][0]
                  != layers[i - 1]["config"]["name"]):
            raise UnsupportedHead(f"layer {spec['config'].get('name')!r} is not a chain link")
        base = _snake(spec["class_name"])
        key = base if base not in seen else f"{base}_{seen[base]}"
        seen[base] = seen.get(base, 0) + 1
        steps.append(_layer(spec, group, key))

    def run(x: np.ndarray) -> np.ndarray:
        for step in steps:
            x = step(x)
        return x

    return run


def load_head(model_file: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """The head in ``model_file`` as a NumPy function: features (n, d) -> probabilities."""
    import h5py

    try:
        with zipfile.ZipFile(model_file) as archive:
            config = json.loads(archive.read("config.json"))
            weights = io.BytesIO(archive.read("model.weights.h5"))
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise UnsupportedHead(f"{model_file}: not a readable .keras file ({err})") from None
    if config.get("class_name") not in MODELS:
        raise UnsupportedHead(f"{model_file}: a {config.get('class_name')}, not a model")
    with h5py.File(weights, "r") as store:
        try:
            return _chain(config["config"], store)
        except (KeyError, TypeError, IndexError) as err:
            raise UnsupportedHead(f"{model_file}: unexpected layout ({err})") from None


def head_probabilities(model_file: str | Path, features: np.ndarray) -> np.ndarray:
    """Class probabilities of the head in ``model_file`` for ``features``, in float32, as
    Keras computes them (evaluate_head's test split, calibration's validation split)."""
    return load_head(model_file)(np.asarray(features, np.float32)).astype(np.float32)
