"""The served model: a model folder (``model.keras`` + ``card.json``) behind one seam.

The server only ever calls ``ServedModel.runtime.predict(images) -> probabilities`` and
``ServedModel.decode(bytes)``; :func:`make_runtime` is the one factory of runtimes, so
another inference runtime (OpenVINO, ONNX Runtime) plugs in as another ``Runtime`` there.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from pipeline.core.errors import PipelineError
from pipeline.core.hashing import file_digest

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
# What the version hashes: the weights and graph, and the card that names the outputs.
VERSIONED = (MODEL_FILE, CARD_FILE)
RUNTIMES = ("keras",)


class ModelFolderError(PipelineError):
    """The model folder is missing a file or its card is unusable."""


class Runtime(Protocol):
    outputs: int  # classes the model scores
    input_size: int | None  # px of its square input; None: any

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) RGB in [0, 255] (uint8 or float) -> (n, classes) probabilities."""


class KerasRuntime:
    """``model.keras`` in TensorFlow: one traced function shared by the server's threads."""

    def __init__(self, path: Path):
        import tensorflow as tf

        from pipeline.models.saving import load_model

        self.model = load_model(path)
        self.outputs = int(self.model.output_shape[-1])
        self.input_size = self.model.input_shape[1]
        # Traced once per batch size (reduce_retracing generalises the batch dimension);
        # calling a tf.function from several threads is safe.
        self._call = tf.function(lambda x: self.model(x, training=False),
                                 reduce_retracing=True)

    def predict(self, images: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._call(tf.convert_to_tensor(images, tf.float32)).numpy()

    @property
    def temperature(self) -> float:
        from pipeline.models.temperature import temperature_of

        return temperature_of(self.model)


@dataclass
class ServedModel:
    folder: Path
    name: str  # the source model (card's ``model``)
    version: str  # see model_version
    classes: list[str]
    image_size: int
    card: dict[str, Any]
    runtime: Runtime
    _decoder: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def decode(self, contents: bytes) -> np.ndarray:
        """(size, size, 3) float32 RGB in [0, 255]: pipeline.data.input.decode_image, the
        decode and resize of training and evaluation."""
        import tensorflow as tf

        with self._lock:  # trace once, whichever request comes first
            if self._decoder is None:
                from pipeline.data.input import decode_image

                size = self.image_size
                self._decoder = tf.function(lambda c: decode_image(c, size),
                                            input_signature=[tf.TensorSpec([], tf.string)])
        return self._decoder(tf.constant(contents)).numpy()

    def metadata(self) -> dict[str, Any]:
        temperature = getattr(self.runtime, "temperature", None)
        if temperature is None:
            temperature = self.card.get("temperature")
        return {
            "model": self.name,
            "version": self.version,
            "classes": self.classes,
            "image_size": self.image_size,
            "temperature": temperature,
            "preprocessing": self.card.get("preprocessing"),
        }


def model_version(folder: Path) -> str:
    """``sha256:`` + the sha256 of each versioned file's name and sha256, in order.

    The files' own bytes, not DVC's md5 of the folder: a folder fetched with
    ``dvc get`` or copied by hand carries no DVC metadata, yet gets the same version;
    and files other engineers add beside (saved_model/, model.onnx) do not change it.
    """
    digest = hashlib.sha256()
    for name in VERSIONED:
        digest.update(f"{name} {file_digest(folder / name)}\n".encode())
    return "sha256:" + digest.hexdigest()


def read_card(folder: Path) -> dict[str, Any]:
    path = folder / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ModelFolderError(f"cannot read {path}: {err.strerror}") from None
    except json.JSONDecodeError as err:
        raise ModelFolderError(f"{path}: not valid JSON ({err.msg}, line {err.lineno})") from None
    if not isinstance(card, dict):
        raise ModelFolderError(f"{path}: expected a JSON object")
    classes, size = card.get("classes"), card.get("image_size")
    if not (isinstance(classes, list) and len(classes) >= 2
            and all(isinstance(c, str) for c in classes)):
        raise ModelFolderError(f"{path}: `classes` must be a list of at least two names")
    if not (isinstance(size, int) and size > 0):
        raise ModelFolderError(f"{path}: `image_size` must be a positive integer (got {size!r})")
    return card


def load_served(folder: str | Path, runtime: str = "keras") -> ServedModel:
    """The model folder, checked, with the runtime that serves it."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} not found; run `dvc repro` (the export "
                               "stage writes artifacts/classifier) or "
                               "`dvc get <repo> artifacts/classifier`")
    if not (folder / MODEL_FILE).is_file():
        raise ModelFolderError(f"{folder / MODEL_FILE} not found")
    if runtime not in RUNTIMES:
        raise ModelFolderError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
    card = read_card(folder)
    engine = make_runtime(folder, runtime)
    if engine.outputs != len(card["classes"]):
        raise ModelFolderError(f"{folder / CARD_FILE} names {len(card['classes'])} classes for "
                               f"a model with {engine.outputs} outputs")
    if engine.input_size not in (None, card["image_size"]):
        raise ModelFolderError(f"{folder / CARD_FILE} says image_size {card['image_size']}, the "
                               f"model takes {engine.input_size} px")
    name = str(card.get("model") or card.get("name") or folder.name)
    return ServedModel(folder=folder, name=name, version=model_version(folder),
                       classes=card["classes"], image_size=card["image_size"], card=card,
                       runtime=engine)


def make_runtime(folder: Path, runtime: str = "keras") -> Runtime:
    """The one factory of runtimes: another (OpenVINO, ONNX Runtime) is one more branch."""
    if runtime == "keras":
        return KerasRuntime(folder / MODEL_FILE)
    raise ModelFolderError(f"runtime {runtime!r}: one of {', '.join(RUNTIMES)}")
