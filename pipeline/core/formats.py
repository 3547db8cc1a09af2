"""Which files are images, and what the pipeline's decoder (``tf.io.decode_image``) reads.

Names are Pillow's, since prepare checks every image with Pillow before TensorFlow
ever sees it.
"""

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
