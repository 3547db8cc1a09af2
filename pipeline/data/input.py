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


def load_image(path: tf.Tensor, image_size: int, exif_orientation: bool = True) -> tf.Tensor:
    """Decode any format tf.io reads (JPEG, PNG, GIF, BMP) to RGB and resize to a square.

    A JPEG at least four times the target on its short side is decoded at reduced scale
    (the largest DCT ratio that leaves that side >= 2 x ``image_size``, so that the
    antialiased resize still does the last halving and the result stays within about
    one grey level of a full decode): up to 2.5-3x faster decode + resize on camera
    photos (benchmarks/levers.md). A JPEG under four times the target decodes exactly
    as ``tf.io.decode_image`` would. A JPEG's EXIF Orientation (or, without one, its XMP
    tiff:Orientation) is applied (TF's decoders ignore it), as prepare and Pillow's
    ``ImageOps.exif_transpose`` do, unless ``exif_orientation`` is False (params.yaml's
    ``data.images.exif_orientation``, or the setting a model's card records:
    pipeline.models.card.orientation_of)."""
    return decode_image(tf.io.read_file(path), image_size, exif_orientation)


def decode_image(contents: tf.Tensor, image_size: int, exif_orientation: bool = True
                 ) -> tf.Tensor:
    """:func:`load_image` on the encoded bytes: the one decode of training, evaluation and
    serving (``python -m pipeline.serve`` gets bytes, not files)."""
    image = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: decode_jpeg_scaled(contents, image_size),
        lambda: tf.io.decode_image(contents, channels=3, expand_animations=False),
    )
    image = tf.image.resize(image, (image_size, image_size), antialias=True)
    if exif_orientation:  # on the square: a resize to a square commutes with the turn
        image = apply_orientation(image, exif_orientation_of(contents))
    return tf.ensure_shape(image, (image_size, image_size, 3))


# --------------------------------------------------------------------------- EXIF orientation
# Read in the graph from the JPEG's bytes (no py_function, no manifest lookup), so that
# training, evaluation, predict and a server decoding uploaded bytes all turn a photo
# the same way, and as Pillow (prepare, the contact sheets) reads it. A fixed walk of
# the first segments; what it cannot read reads as 1 (no turn), never as an error.

_ORIENTATION_TAG = 0x0112
_MAX_SEGMENTS = 16  # APPn segments before the EXIF one (JFIF, ICC, XMP ... come first)
_MAX_ENTRIES = 64  # IFD0 entries read (Orientation is among the first dozen)
_XMP = b"http://ns.adobe.com/xap/1.0/\0"  # how an APP1 segment holding XMP starts
# Pillow's reading of an XMP packet (Image.getexif, when EXIF has no Orientation): the
# first tiff:Orientation attribute or element, one digit. \C: any byte (RE2 reads UTF-8).
_XMP_ORIENTATION = r'\C*?tiff:Orientation(?:="|>)([0-9])\C*'


def _read(contents: tf.Tensor, size: tf.Tensor, pos: tf.Tensor, n: int) -> tf.Tensor:
    """``n`` bytes at ``pos`` as int32, zeros past the end (never an out-of-range error)."""
    piece = tf.strings.substr(contents, tf.clip_by_value(pos, 0, size), n) + b"\0" * n
    return tf.reshape(tf.cast(tf.io.decode_raw(piece, tf.uint8)[:n], tf.int32), [n])


def _uint(b: tf.Tensor, little: tf.Tensor) -> tf.Tensor:
    """Unsigned integer of the bytes ``b`` (last axis), little- or big-endian."""
    n = b.shape[-1]
    weights_le = tf.constant([256**i for i in range(n)], tf.int64)
    weights = tf.where(little, weights_le, tf.reverse(weights_le, [0]))
    return tf.reduce_sum(tf.cast(b, tf.int64) * weights, axis=-1)


def _exif_and_xmp(contents: tf.Tensor, size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Offset of the TIFF header in a JPEG's first EXIF APP1 segment (-1 if there is none)
    and its last XMP packet (empty if none): the ones Pillow reads.

    Branch-free (tf.where, no tf.cond / while_loop: control flow in a tf.data map costs
    milliseconds per image): the first ``_MAX_SEGMENTS`` segments are read at fixed
    steps; EXIF follows only APPn and comment segments (cameras write it first).
    """
    pos, found, going = tf.constant(2), tf.constant(-1), tf.constant(True)
    walk = []
    for _ in range(_MAX_SEGMENTS):
        head = _read(contents, size, pos, 4)  # 0xFF, marker, length (big-endian)
        marker = tf.where(head[0] == 0xFF, head[1], 0)
        length = head[2] * 256 + head[3]
        exif = going & (marker == 0xE1) & tf.equal(
            tf.strings.substr(contents, tf.minimum(pos + 4, size), 6), b"Exif\0\0")
        found = tf.where(exif & (found < 0), pos + 10, found)
        walk.append((pos, going, marker, length))
        going = going & ((marker >= 0xE0) & (marker <= 0xEF) | (marker == 0xFE)) & (length >= 2)
        pos = pos + 2 + length
    # XMP over the walk at once (a vector op costs what a scalar one does, in time per image)
    starts, walked, markers, lengths = (tf.stack(column) for column in zip(*walk, strict=True))
    xmp = walked & (markers == 0xE1) & (lengths >= 2 + len(_XMP)) & tf.equal(tf.strings.substr(
        contents, tf.minimum(starts + 4, size), [len(_XMP)] * _MAX_SEGMENTS), _XMP)
    index = tf.range(_MAX_SEGMENTS)
    last = xmp & (index == tf.reduce_max(tf.where(xmp, index, -1)))  # Pillow keeps the last
    at = tf.reduce_sum(tf.where(last, starts + 4 + len(_XMP), 0))  # none: 0 bytes at 0
    n = tf.reduce_sum(tf.where(last, lengths - 2 - len(_XMP), 0))
    return found, tf.strings.substr(contents, at, n)


def exif_orientation_of(contents: tf.Tensor) -> tf.Tensor:
    """EXIF Orientation (int32, 1-8) of encoded image bytes, or without one XMP's, as Pillow
    reads them; 1 when none, or not a JPEG."""
    size = tf.strings.length(contents)
    tiff, xmp = _exif_and_xmp(contents, size)  # a PNG's bytes never look like a segment
    little = tf.equal(tf.strings.substr(contents, tf.clip_by_value(tiff, 0, size), 2), b"II")
    ifd = tiff + tf.cast(_uint(_read(contents, size, tiff + 4, 4), little), tf.int32)
    count = tf.cast(_uint(_read(contents, size, ifd, 2), little), tf.int32)
    entries = tf.reshape(_read(contents, size, ifd + 2, 12 * _MAX_ENTRIES), (_MAX_ENTRIES, 12))
    tags = _uint(entries[:, 0:2], little)
    hit = (tiff >= 0) & (tags == _ORIENTATION_TAG) & (tf.range(_MAX_ENTRIES) < count)
    value = tf.reduce_max(tf.where(hit, tf.cast(_uint(entries[:, 8:10], little), tf.int32), 0))
    in_xmp = tf.strings.regex_full_match(xmp, _XMP_ORIENTATION)
    digit = tf.where(in_xmp, tf.strings.regex_replace(xmp, _XMP_ORIENTATION, r"\1"), "0")
    # XMP's only when EXIF has no Orientation entry (one of 0 or 9 is no turn, as in Pillow)
    value = tf.where(tf.reduce_any(hit), value, tf.strings.to_number(digit, tf.int32))
    return tf.where((value >= 1) & (value <= 8), value, 1)


# Orientation -> (transpose, then flip left-right, then flip up-down): Pillow's
# exif_transpose, as three optional flips of the square (any turn or mirror of it).
_TURNS = np.array([
    [0, 0, 0], [0, 1, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 0, 1],
], dtype=bool)


def apply_orientation(image: tf.Tensor, orientation: tf.Tensor) -> tf.Tensor:
    """A square ``image`` (S, S, C) turned upright for an EXIF Orientation (1-8), as
    Pillow's ``ImageOps.exif_transpose`` does; branch-free, so cheap in a tf.data map."""
    turn = tf.gather(tf.constant(_TURNS), tf.clip_by_value(orientation, 1, 8) - 1)
    image = tf.where(turn[0], tf.transpose(image, (1, 0, 2)), image)
    image = tf.where(turn[1], tf.reverse(image, [1]), image)
    return tf.where(turn[2], tf.reverse(image, [0]), image)


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
    exif_orientation: bool = True,
) -> tf.data.Dataset:
    """Batches of (images, labels). ``augment`` maps a *batch*; evaluation passes none.
    ``exif_orientation``: as :func:`load_image`."""
    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    ds = ds.map(
        lambda p, y: (load_image(p, image_size, exif_orientation), y),
        num_parallel_calls=AUTOTUNE,
    ).batch(batch_size)
    if augment is not None:
        ds = ds.map(augment, num_parallel_calls=AUTOTUNE)
    return shard_by_data(ds)
