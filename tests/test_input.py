"""The image decoder every network stage shares (pipeline.data.input.load_image)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf  # a hard dependency: a broken install fails here, not skips
from PIL import Image

from pipeline.data.input import load_image


def photo(path, size: tuple[int, int], fmt: str = "JPEG", mode: str = "RGB"):
    """Gradients with fine detail on top (a stripe pattern and seeded noise), so that a
    decoder that shrinks badly (aliasing) shows."""
    w, h = size
    x, y = np.meshgrid(np.linspace(0, 1, w), np.linspace(0, 1, h))
    rgb = np.stack([x, y, (np.sin(6 * x) * np.cos(4 * y) + 1) / 2], axis=-1)
    rgb += 0.15 * np.sin(200 * x)[..., None]  # ~30 stripes: detail the target cannot hold
    rgb += np.random.default_rng(0).normal(0, 0.05, rgb.shape)
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8)).convert(mode)
    image.save(path, fmt, quality=95)
    return path


def reference(path, size: int, ratio: int = 1) -> np.ndarray:
    """Full decode (or one DCT ratio) then the same antialiased resize."""
    data = tf.io.read_file(str(path))
    image = (tf.io.decode_image(data, channels=3, expand_animations=False) if ratio == 1
             else tf.io.decode_jpeg(data, channels=3, ratio=ratio))
    return tf.image.resize(image, (size, size), antialias=True).numpy()


def test_a_large_jpeg_decodes_at_the_largest_scale_that_keeps_twice_the_target(tmp_path):
    big = photo(tmp_path / "big.jpg", (2100, 2060))  # 1/4 gives 515 px >= 2 x 128
    got = load_image(tf.constant(str(big)), 128).numpy()
    assert got.shape == (128, 128, 3)
    assert np.array_equal(got, reference(big, 128, ratio=4))
    # ... and looks like the full-resolution decode (the stripes are near the target's
    # limit: 1/8 scale, or a decode straight to the target, would blur them 3.5-7 levels).
    assert np.abs(got - reference(big, 128)).mean() < 1.5
    # Under 8x the target, a smaller ratio: 2060 >= 2 * 2 * 300, not 2 * 4 * 300.
    assert np.array_equal(load_image(tf.constant(str(big)), 300).numpy(),
                          reference(big, 300, ratio=2))


def test_the_ratio_switches_at_exactly_four_times_the_target(tmp_path):
    below = photo(tmp_path / "below.jpg", (600, 511))  # 511 < 4 * 128: in full
    at = photo(tmp_path / "at.jpg", (600, 512))  # 512 = 4 * 128: half scale
    assert np.array_equal(load_image(tf.constant(str(below)), 128).numpy(),
                          reference(below, 128))
    assert np.array_equal(load_image(tf.constant(str(at)), 128).numpy(),
                          reference(at, 128, ratio=2))


def test_grey_and_cmyk_jpegs_decode_to_rgb_at_reduced_scale(tmp_path):
    for mode in ("L", "CMYK"):
        big = photo(tmp_path / f"{mode}.jpg", (1024, 1024), mode=mode)
        got = load_image(tf.constant(str(big)), 128).numpy()
        assert got.shape == (128, 128, 3), mode
        assert np.array_equal(got, reference(big, 128, ratio=4)), mode
        assert np.abs(got - reference(big, 128)).mean() < 1.5, mode


def test_a_jpeg_under_four_times_the_target_and_other_formats_decode_in_full(tmp_path):
    small = photo(tmp_path / "small.jpg", (600, 500))  # 500 < 4 * 128: no scaling
    png = photo(tmp_path / "big.png", (1100, 1030), "PNG")  # not a JPEG: always in full
    # A JPEG's bytes under a .png name are a JPEG: the bytes decide, as decode_image does.
    disguised = tmp_path / "disguised.png"
    disguised.write_bytes(photo(tmp_path / "d.jpg", (1100, 1030)).read_bytes())  # 1/4
    for path in (small, png):
        assert np.array_equal(load_image(tf.constant(str(path)), 128).numpy(),
                              reference(path, 128)), path.name
    assert np.array_equal(load_image(tf.constant(str(disguised)), 128).numpy(),
                          reference(disguised, 128, ratio=4))


def test_the_stages_input_pipeline_takes_the_same_branches_in_graph_mode(tmp_path):
    """Inside tf.data's map the choice is made by the graph (tf.case), not by Python."""
    from pipeline.data.input import image_dataset

    paths = [photo(tmp_path / "big.jpg", (1100, 1030)), photo(tmp_path / "small.jpg", (600, 500)),
             photo(tmp_path / "big.png", (1100, 1030), "PNG")]
    ratios = [4, 1, 1]
    batch, _ = next(iter(image_dataset(np.array([str(p) for p in paths]),
                                       np.zeros(3, np.int32), 128, 3)))
    for got, path, ratio in zip(batch.numpy(), paths, ratios, strict=True):
        assert np.array_equal(got, reference(path, 128, ratio)), path.name


@pytest.mark.parametrize(("name", "size", "fmt"), [("big.jpg", (400, 300), "JPEG"),
                                                   ("small.png", (90, 70), "PNG")])
def test_decode_image_on_bytes_is_load_image_on_the_file(tmp_path, name, size, fmt):
    """What the server decodes from an upload is what the stages decode from the file."""
    from pipeline.data.input import decode_image

    path = photo(tmp_path / name, size, fmt)
    np.testing.assert_array_equal(decode_image(tf.constant(path.read_bytes()), 64).numpy(),
                                  load_image(tf.constant(str(path)), 64).numpy())
