"""A trained model, whole: its network, its card and its temperature, the decode it was
trained on, and its forward pass on the chosen inference runtime.

Outside training this is the one module that loads a model file: evaluation
(``models/<name>.keras``), the export (the same, chained behind its backbone when it is
a head, and calibrated), predict (any model file) and serve (a model folder) all hold a
:class:`TrainedModel`. Each therefore decodes an image as training did (the decoder of
pipeline.data.input, turned by its EXIF tag as the card's ``exif_orientation`` says) and
runs the network through pipeline.runtimes' :func:`compile_forward`. Importing this
module imports no Keras and no TensorFlow (the NumPy head's evaluation reads paths here).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pipeline.core import paths
from pipeline.core.io import read_json
from pipeline.core.pixels import limit_of
from pipeline.models.card import orientation_of


def recorded_temperature(record: Path) -> float | None:
    """The temperature the evaluate stage fitted, from its metrics file ``record``
    (``metrics/evaluate/<name>.json``); None when the file or its ``temperature`` is absent
    (``evaluate.calibration: none``)."""
    value = read_json(record).get("temperature") if record.is_file() else None
    return None if value is None else float(value)


@dataclass
class TrainedModel:
    """A network (probabilities out) with the card that says how its inputs are made.

    ``card`` holds at least ``classes`` and, for an image model, ``image_size``; its
    ``exif_orientation`` and ``max_pixels`` are the decode and pixel rule it was trained
    with. ``temperature`` is the one the evaluate stage fitted for it, not yet applied:
    :meth:`calibrated` applies it."""

    network: Any  # keras.Model
    card: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None  # the file it was loaded from
    temperature: float = 1.0

    @classmethod
    def load(cls, source: str | Path, card: Mapping[str, Any] | None = None,
             temperature: float = 1.0) -> TrainedModel:
        """The network in ``source`` (Keras' safe mode on: pipeline.models.saving; a
        :class:`~pipeline.models.saving.ModelFileError` naming the file when it cannot be
        loaded), with ``card``."""
        from pipeline.models.saving import load_model

        return cls(load_model(source), dict(card or {}), Path(source), temperature)

    @classmethod
    def named(cls, name: str) -> TrainedModel:
        """``models/<name>.keras`` with its card (``models/<name>.json``) and the temperature
        its evaluate stage fitted (``metrics/evaluate/<name>.json``; 1.0 when it fitted
        none)."""
        card = read_json(paths.model_card(name))
        fitted = recorded_temperature(paths.evaluation(name))
        return cls.load(paths.model_file(name), card, 1.0 if fitted is None else fitted)

    # ----------------------------------------------------------------- what the card says

    @property
    def classes(self) -> list[str]:
        return self.card["classes"]

    @property
    def image_size(self) -> int:
        """The side of the square images its decode makes (for a head: its backbone's)."""
        return self.card["image_size"]

    @property
    def exif_orientation(self) -> bool:
        """Whether its training turned photos by their EXIF tag (pipeline.models.card)."""
        return orientation_of(self.card)

    def pixel_rule(self, params_limit: int | None = None) -> tuple[int, str]:
        """(the pixel limit, where it came from): the card's ``max_pixels``, else
        ``params_limit`` (params.yaml's data.images.max_pixels), else Pillow's default."""
        return limit_of(self.card, params_limit)

    # ----------------------------------------------------------------- derived models

    def calibrated(self, temperature: float | None = None) -> TrainedModel:
        """The network followed by its temperature (``temperature``, else the fitted one):
        the same network when that is 1 (pipeline.models.temperature)."""
        from pipeline.models.temperature import with_temperature

        t = self.temperature if temperature is None else temperature
        return replace(self, network=with_temperature(self.network, t), temperature=t)

    def on_backbone(self, backbone, seed: int, record: Mapping[str, Any],
                    made: Mapping[str, Any] | None) -> TrainedModel:
        """A head as an image model: behind its backbone rebuilt exactly as the features
        stage built it (pipeline.models.rebuild.head_on_backbone, whose arguments these
        are); the card is left as it is."""
        from pipeline.models.rebuild import head_on_backbone

        return replace(self, network=head_on_backbone(self.network, self.source, backbone,
                                                      seed, record, made))

    # ----------------------------------------------------------------- inputs and outputs

    def decode(self, contents):
        """Encoded image bytes (a string tensor) -> (size, size, 3) float32 RGB in
        [0, 255], as training decoded (pipeline.data.input.decode_image)."""
        from pipeline.data.input import decode_image

        return decode_image(contents, self.image_size, self.exif_orientation)

    def read_image(self, path):
        """:meth:`decode` of the file at ``path`` (a string tensor): load_image."""
        from pipeline.data.input import load_image

        return load_image(path, self.image_size, self.exif_orientation)

    def dataset(self, files, labels, batch_size: int):
        """Batches of (images, labels) of ``files``, decoded as :meth:`read_image`
        (pipeline.data.input.image_dataset, in order)."""
        from pipeline.data.input import image_dataset

        return image_dataset(files, labels, self.image_size, batch_size,
                             exif_orientation=self.exif_orientation)

    def forward(self, runtime: str = "auto", precision: str = "auto"):
        """The network as a :class:`~pipeline.runtimes.forward.Forward` on ``runtime`` in
        ``precision`` (params.yaml's inference section; pipeline.runtimes.select)."""
        from pipeline.runtimes.select import compile_forward

        return compile_forward(self.network, runtime, precision)
