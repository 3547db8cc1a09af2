"""Pixels as TensorFlow sees them, and the 64-bit perceptual hash that finds near copies.

Pillow's own ``convert("RGB")`` *clips* 16-bit grayscale to 255 (white), while the
pipeline's decoder (``tf.io.decode_image(channels=3)``) scales it; :func:`to_rgb` does
what TensorFlow does, so the hash is of the image the model will see.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB as ``tf.io.decode_image(channels=3)`` makes it (16-bit scaled, alpha dropped)."""
    if img.mode.startswith("I;16") or img.mode == "I":  # "I": 16-bit data in 32-bit ints
        wide = np.clip(np.asarray(img, dtype=np.int64), 0, 65535)
        return Image.fromarray((wide >> 8).astype(np.uint8), "L").convert("RGB")
    if img.mode == "F":
        return Image.fromarray(np.clip(np.asarray(img), 0, 255).astype(np.uint8)).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def _dct_matrix(n: int) -> np.ndarray:
    # Orthogonal-free DCT-II basis: scipy.fftpack.dct up to a constant factor, which
    # comparing each coefficient with the median does not see.
    k = np.arange(n)[:, None]
    return np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n))


_DCT32 = _dct_matrix(32)


def phash(img: Image.Image) -> str:
    """64-bit DCT perceptual hash, 16 hex digits; the same bits as ``imagehash.phash``.

    Grey 32x32 (Lanczos), 2-D DCT, the 8x8 lowest frequencies, each bit set where
    the coefficient exceeds their median; bits row-major, first bit most significant.
    """
    grey = to_rgb(img).convert("L").resize((32, 32), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    low = (_DCT32 @ pixels @ _DCT32.T)[:8, :8]
    bits = (low > np.median(low)).flatten()
    return f"{int(''.join('1' if b else '0' for b in bits), 2):016x}"
