"""The images the export is checked and calibrated on, read as training reads them.

Each image comes twice: as the float pixels :func:`pipeline.data.input.load_image`
gives (the input of every float signature) and as its file's bytes (the input of the
SavedModel's ``serving_default``, which decodes them itself).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.core.pixels import DEFAULT_MAX_PIXELS, TooManyPixels, check_pixels, header_pixels
from pipeline.data.input import image_dataset, split_arrays


@dataclass(frozen=True)
class Images:
    pixels: np.ndarray  # float32 [N, size, size, 3], raw RGB in [0, 255]
    labels: np.ndarray  # int32 [N], indices into the card's classes
    encoded: np.ndarray  # object [N], each file's bytes
    exif_orientation: bool = True  # the pixels' decode, which serving_default's must match

    def __len__(self) -> int:
        return len(self.labels)


def split_images(manifest, root: Path, split: str, classes: list[str], image_size: int,
                 count: int | None = None, seed: int = 0, exif_orientation: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Images:
    """The ``split``'s images in manifest order, or ``count`` of them drawn with ``seed``,
    decoded as the model was trained (``exif_orientation``: its card's). Each must pass
    the pixel rule the card records (``max_pixels``), as prepare checked it: a file that
    changed since is an error, not decoded."""
    files, labels = split_arrays(manifest, root, split, classes)
    if not len(files):
        raise PipelineError(f"{paths.MANIFEST}: no {split} images to export against")
    if count is not None and count < len(files):
        keep = np.sort(np.random.default_rng(seed).choice(len(files), count, replace=False))
        files, labels = files[keep], labels[keep]
    for file in files:
        try:
            check_pixels(header_pixels(file) or 0, max_pixels)
        except TooManyPixels as err:
            raise PipelineError(f"{file}: {err}; run `dvc repro` (prepare refuses it)") from None
    batches = image_dataset(files, labels, image_size, batch_size=32,
                            exif_orientation=exif_orientation).map(lambda x, y: x)
    pixels = np.concatenate(list(batches.as_numpy_iterator()))
    encoded = np.array([Path(f).read_bytes() for f in files], dtype=object)
    return Images(pixels, labels, encoded, exif_orientation)
