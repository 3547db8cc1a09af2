"""tf.data input pipelines over the manifest: parallel decode, resize, batch, prefetch.

Images come out as float32 RGB in [0, 255]; models carry their own
preprocessing (see pipeline.models.backbone). Order is deterministic: parallel map
keeps element order. Training input goes through ``pipeline.data.epochs.Epochs``
(shuffled by epoch, stateless) with :func:`load_image` as its loader.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from pipeline.data.sharding import shard_by_data

AUTOTUNE = tf.data.AUTOTUNE


# JPEG's DCT scaling: libjpeg decodes straight to 1/2 or 1/4 of the size. Not 1/8: that
# keeps only each block's mean (a box filter), 3.5-4.5 grey levels from a full decode on
# striped test images where 1/2 and 1/4 stay within 1.
DCT_RATIOS = (4, 2)


def load_image(path: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode any format tf.io reads (JPEG, PNG, GIF, BMP) to RGB and resize to a square.

    A JPEG at least four times the target on its short side is decoded at reduced scale
    (the largest DCT ratio that leaves that side >= 2 x ``image_size``, so that the
    antialiased resize still does the last halving and the result stays within about
    one grey level of a full decode): up to 2.5-3x faster decode + resize on camera
    photos (benchmarks/levers.md). A JPEG under four times the target decodes exactly
    as ``tf.io.decode_image`` would."""
    return decode_image(tf.io.read_file(path), image_size)


def decode_image(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """:func:`load_image` on an image's encoded bytes (what the exported SavedModel gets)."""
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: decode_jpeg_scaled(contents, image_size),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    return tf.ensure_shape(image, (image_size, image_size, 3))


def decode_jpeg_scaled(contents: tf.Tensor, image_size: int) -> tf.Tensor:
    """RGB uint8 of a JPEG, at the smallest DCT scale whose short side is >= 2 x image_size.

    Decoding straight to the target (no margin) blurs twice, DCT scaling then the
    resize: measured on striped test images, up to 7 grey levels from a full decode
    against about 1 with the margin."""
    short = tf.reduce_min(tf.io.extract_jpeg_shape(contents)[:2])
    branches = [(short >= 2 * ratio * image_size,
                 lambda ratio=ratio: tf.io.decode_jpeg(contents, channels=3, ratio=ratio))
                for ratio in DCT_RATIOS]
    return tf.case(branches, default=lambda: tf.io.decode_jpeg(contents, channels=3),
                   exclusive=False)  # the first (largest) ratio that fits


def split_arrays(
    manifest: pd.DataFrame, root: str | Path, split: str, classes: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """(absolute paths, integer labels) of one split, in manifest order."""
    rows = manifest[manifest["split"] == split]
    index = {name: i for i, name in enumerate(classes)}
    paths = np.array([str(Path(root) / p) for p in rows["path"]])
    labels = rows["label"].map(index).to_numpy(dtype=np.int32)
    return paths, labels


def image_dataset(
    paths: np.ndarray,
    labels: np.ndarray,
    image_size: int,
    batch_size: int,
    *,
    augment: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = None,
) -> tf.data.Dataset:
    """Batches of (images, labels). ``augment`` maps a *batch*; evaluation passes none."""
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(
        lambda p, y: (load_image(p, image_size), y), num_parallel_calls=AUTOTUNE
    ).batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=AUTOTUNE)
    return shard_by_data(ds)
