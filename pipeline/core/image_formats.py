"""Which files are images, and what the pipeline's decoder (``tf.io.decode_image``) reads.

Names are Pillow's, since prepare checks every image with Pillow before TensorFlow
ever sees it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

# File extensions scanned as images: what tf.io.decode_image reads.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp"})
# File extensions and the Pillow format they promise (a mismatch is reported).
EXTENSION_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
}  # fmt: skip
# Pillow names some JPEGs by their container: multi-picture (camera) JPEGs are
# "MPO", and TensorFlow reads them as plain JPEGs.
FORMAT_ALIASES = {"MPO": "JPEG"}
# The most data.images.formats / data.images.modes may allow: what the decoder reads
# (modes other than RGB are converted to 8-bit RGB by it).
TF_FORMATS = ("JPEG", "PNG", "GIF", "BMP")
TF_MODES = (
    "RGB", "L", "LA", "RGBA", "RGBX", "P", "PA", "1", "CMYK", "I;16", "I;16L", "I;16B", "I;16N",
)  # fmt: skip


def jpeg_orientation(img: Image.Image) -> int:
    """The EXIF Orientation (1-8) of an open JPEG, 1 for none, a value out of range or
    another format.

    JPEG only, in every path: the pipeline's tf.data decoder reads the tag from JPEG's
    APP1 segment (pipeline.data.input.exif_orientation), so a PNG's rare eXIf chunk is
    not applied, and prepare and the contact sheets must not apply it either."""
    if FORMAT_ALIASES.get(img.format or "", img.format) != "JPEG":
        return 1
    try:
        value = img.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError, TypeError):  # a broken EXIF block: ignored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1
