"""The image decoder every network stage shares (pipeline.data.input.load_image)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

tf = pytest.importorskip("tensorflow")

from pipeline.data.input import load_image  # noqa: E402


def photo(path, size: tuple[int, int], fmt: str = "JPEG"):
    """A smooth, non-uniform RGB picture (gradients), as a camera photo is at this scale."""
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    rgb = np.stack([x, y, (np.sin(6 * x) * np.cos(4 * y) + 1) / 2], axis=-1)
    Image.fromarray((rgb * 255).astype(np.uint8)).save(path, fmt, quality=95)
    return path


def reference(path, size: int, ratio: int = 1) -> np.ndarray:
    """Full decode (or one DCT ratio) then the same antialiased resize."""
    data = tf.io.read_file(str(path))
    image = (tf.io.decode_image(data, channels=3, expand_animations=False) if ratio == 1
             else tf.io.decode_jpeg(data, channels=3, ratio=ratio))
    return tf.image.resize(image, (size, size), antialias=True).numpy()


def test_a_large_jpeg_decodes_at_the_largest_scale_that_keeps_the_target(tmp_path):
    big = photo(tmp_path / "big.jpg", (1100, 1030))  # short side 1030: 1/8 gives 129 >= 128
    got = load_image(tf.constant(str(big)), 128).numpy()
    assert got.shape == (128, 128, 3)
    assert np.array_equal(got, reference(big, 128, ratio=8))
    # ... and looks like the full-resolution decode: a reduced-scale decode is a low-pass.
    assert np.abs(got - reference(big, 128)).mean() < 2.0
    # Below 8x the target, a smaller ratio: 1030 >= 4 * 200, not 8 * 200.
    assert np.array_equal(load_image(tf.constant(str(big)), 200).numpy(),
                          reference(big, 200, ratio=4))


def test_a_jpeg_near_the_target_and_other_formats_decode_in_full(tmp_path):
    small = photo(tmp_path / "small.jpg", (250, 200))  # 200 < 2 * 128: no scaling
    png = photo(tmp_path / "big.png", (1100, 1030), "PNG")  # not a JPEG: always in full
    for path in (small, png):
        assert np.array_equal(load_image(tf.constant(str(path)), 128).numpy(),
                              reference(path, 128)), path.name
