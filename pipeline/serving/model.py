"""The served model: a model folder (``model.keras`` + ``card.json``) behind one seam.

The server only ever calls ``ServedModel.runtime.predict(images) -> probabilities`` and
``ServedModel.decode(bytes)``. The folder is loaded as a
:class:`pipeline.models.trained.TrainedModel` (``model.keras`` with ``card.json``), and
:func:`make_runtime`, the one factory of runtimes, runs it on the inference runtime of
pipeline.runtimes (``--runtime`` and ``--precision``, auto as params.yaml's ``inference``
section): OpenVINO where it converts the model and agrees with TensorFlow float32, else
TensorFlow with the reason. Another runtime (ONNX Runtime) would be another ``Runtime``
there. ``decode`` is the model's: it turns a photo by its EXIF tag only if the card says
the model was trained so (``exif_orientation``).
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
from pipeline.core.pixels import limit_of
from pipeline.models.trained import TrainedModel

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
# What the version hashes: the weights and graph, and the card that names the outputs.
VERSIONED = (MODEL_FILE, CARD_FILE)


class ModelFolderError(PipelineError):
    """The model folder is missing a file or its card is unusable."""


class Runtime(Protocol):
    outputs: int  # classes the model scores
    input_size: int | None  # px of its square input; None: any

    def predict(self, images: np.ndarray) -> np.ndarray:
        """(n, size, size, 3) RGB in [0, 255] (uint8 or float) -> (n, classes) probabilities."""


class ForwardRuntime:
    """A trained model on the runtime :meth:`TrainedModel.forward` resolved: TensorFlow
    (one traced function, safe from the server's threads) or OpenVINO (one infer request:
    calls are serialised; it spreads one batch over every core)."""

    def __init__(self, trained: TrainedModel, runtime: str = "auto", precision: str = "auto"):
        self.model = trained.network
        self.outputs = int(self.model.output_shape[-1])
        self.input_size = self.model.input_shape[1]
        self.forward = trained.forward(runtime, precision)
        self._lock = threading.Lock() if self.forward.runtime != "tensorflow" else None

    def predict(self, images: np.ndarray) -> np.ndarray:
        if self._lock is None:
            return self.forward(images)
        with self._lock:
            return self.forward(images)

    @property
    def label(self) -> str:
        """What runs: ``openvino bfloat16``, ``tensorflow float32``."""
        return self.forward.label()

    @property
    def note(self) -> str:
        """Why auto chose it (its agreement with TensorFlow float32), or why it fell back."""
        return self.forward.note

    @property
    def temperature(self) -> float:
        from pipeline.models.temperature import temperature_of

        return temperature_of(self.model)


@dataclass
class ServedModel:
    folder: Path
    name: str  # the source model (card's ``model``)
    version: str  # see model_version
    model: TrainedModel  # model.keras with its card
    runtime: Runtime
    _decoder: Any = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def card(self) -> dict[str, Any]:
        return self.model.card

    @property
    def classes(self) -> list[str]:
        return self.model.classes

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def exif_orientation(self) -> bool:
        """The card's: the decode the model was trained on."""
        return self.model.exif_orientation

    def decode(self, contents: bytes) -> np.ndarray:
        """(size, size, 3) float32 RGB in [0, 255]: the model's decode
        (pipeline.data.input.decode_image), that of training and evaluation."""
        import tensorflow as tf

        with self._lock:  # trace once, whichever request comes first
            if self._decoder is None:
                model = self.model
                self._decoder = tf.function(lambda c: model.decode(c),
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
            "exif_orientation": self.exif_orientation,
        } | self.runtime_info()

    def runtime_info(self) -> dict[str, Any]:
        """What runs the model (``runtime``: ``openvino bfloat16``) and why (``runtime_note``:
        auto's check against TensorFlow float32, or the reason it fell back)."""
        return {"runtime": getattr(self.runtime, "label", type(self.runtime).__name__),
                "runtime_note": getattr(self.runtime, "note", "") or None}


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
    if not isinstance(card.get("exif_orientation", True), bool):
        raise ModelFolderError(f"{path}: `exif_orientation` must be true or false (got "
                               f"{card['exif_orientation']!r})")
    try:
        limit_of(card, None)
    except ValueError as err:
        raise ModelFolderError(f"{path}: {err}") from None
    return card


def load_served(folder: str | Path, runtime: str = "auto", precision: str = "auto"
                ) -> ServedModel:
    """The model folder, checked, with the runtime that serves it (``runtime`` and
    ``precision`` as params.yaml's ``inference`` section takes them)."""
    from pipeline.models.saving import ModelFileError

    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"model folder {folder} not found; run `dvc repro` (the export "
                               "stage writes artifacts/classifier) or "
                               "`dvc get <repo> artifacts/classifier`")
    if not (folder / MODEL_FILE).is_file():
        raise ModelFolderError(f"{folder / MODEL_FILE} not found")
    card = read_card(folder)
    try:
        model = TrainedModel.load(folder / MODEL_FILE, card)
    except ModelFileError as err:  # random, truncated, Python code: the file and why
        raise ModelFolderError(f"--model {err}") from None
    engine = make_runtime(model, runtime, precision)
    if engine.outputs != len(card["classes"]):
        raise ModelFolderError(f"{folder / CARD_FILE} names {len(card['classes'])} classes for "
                               f"a model with {engine.outputs} outputs")
    if engine.input_size not in (None, card["image_size"]):
        raise ModelFolderError(f"{folder / CARD_FILE} says image_size {card['image_size']}, the "
                               f"model takes {engine.input_size} px")
    name = str(card.get("model") or card.get("name") or folder.name)
    return ServedModel(folder=folder, name=name, version=model_version(folder), model=model,
                       runtime=engine)


def make_runtime(model: TrainedModel, runtime: str = "auto", precision: str = "auto"
                 ) -> Runtime:
    """The one factory of runtimes: the model on TensorFlow or OpenVINO (another, such as
    ONNX Runtime, is one more branch). An explicit runtime or precision that cannot run
    here is an error naming the flag; ``auto`` falls back to TensorFlow and prints the
    one-line reason."""
    from pipeline.runtimes.select import RuntimeChoiceError

    try:
        return ForwardRuntime(model, runtime, precision)
    except RuntimeChoiceError as err:  # its message names params.yaml's keys
        raise RuntimeChoiceError(str(err).replace("inference.runtime", "--runtime")
                                 .replace("inference.precision", "--precision")) from None
