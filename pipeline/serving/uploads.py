"""What an upload must be before TensorFlow sees it; each failure is a 4xx naming the problem.

Checks, in order: the request's size (streamed, so a lying or missing Content-Length
cannot push more than the cap into memory), its content type, an empty body, then per
image: empty, Pillow can open it, a format the pipeline reads
(pipeline/core/formats.py), the decompression-bomb pixel cap (before any pixel is
decoded), and a full verify + load, which catches truncated and corrupt data.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from PIL import Image, UnidentifiedImageError

from pipeline.core.errors import PipelineError
from pipeline.core.formats import FORMAT_ALIASES, TF_FORMATS

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's default, as params.yaml's data.images.max_pixels
DEFAULT_MAX_IMAGES = 32
# Content types of a file part that Pillow then identifies: browsers and curl send the
# format's own type, or octet-stream when they cannot tell from the file name.
IMAGE_PART_TYPES = ("image/", "application/octet-stream")
_DATA_URL = re.compile(r"^data:[\w/+.-]*;base64,", re.IGNORECASE)


class UploadError(PipelineError):
    """A bad request: ``status`` is its HTTP code, the message names the problem."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Limits:
    max_bytes: int = DEFAULT_MAX_BYTES  # the request body
    max_pixels: int = DEFAULT_MAX_PIXELS  # width x height of one image
    max_images: int = DEFAULT_MAX_IMAGES  # per request
    formats: tuple[str, ...] = TF_FORMATS  # Pillow names


@dataclass(frozen=True)
class Upload:
    name: str  # the file name, or images[i] of a JSON list
    data: bytes


# --------------------------------------------------------------------------- the body


def capped_receive(receive: Callable[[], Awaitable[dict]], declared: str | None,
                   max_bytes: int) -> Callable[[], Awaitable[dict]]:
    """An ASGI ``receive`` that stops the request once its body passes ``max_bytes``."""
    too_big = f"the upload is over the {max_bytes:,}-byte cap (--max-bytes)"
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise UploadError(400, f"Content-Length {declared!r} is not a number") from None
        if length > max_bytes:
            raise UploadError(413, f"{too_big}: Content-Length is {length:,} bytes")
    seen = 0

    async def wrapped() -> dict:
        nonlocal seen
        message = await receive()
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            raise UploadError(413, too_big)
        return message

    return wrapped


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def from_json(payload: Any, limits: Limits) -> list[Upload]:
    """A JSON list of base64 strings (or ``{"images": [...]}``); data URLs are accepted."""
    if isinstance(payload, dict) and "images" in payload:
        payload = payload["images"]
    if not isinstance(payload, list):
        raise UploadError(400, "the JSON body must be a list of base64-encoded images "
                          '(or {"images": [...]})')
    check_count(len(payload), limits)
    uploads = []
    for i, item in enumerate(payload):
        name = f"images[{i}]"
        if not isinstance(item, str):
            raise UploadError(400, f"{name}: expected a base64 string, got "
                              f"{type(item).__name__}")
        try:
            data = base64.b64decode(_DATA_URL.sub("", item.strip()), validate=True)
        except (binascii.Error, ValueError):
            raise UploadError(400, f"{name}: not valid base64") from None
        uploads.append(Upload(name, data))
    return uploads


def check_count(n: int, limits: Limits) -> None:
    if n == 0:
        raise UploadError(400, "no image in the request")
    if n > limits.max_images:
        raise UploadError(413, f"{n} images in one request; at most {limits.max_images} "
                          "(--max-images)")


def check_part(name: str, content_type: str | None, limits: Limits) -> None:
    """A multipart file part's declared type, before reading it."""
    kind = media_type(content_type)
    if kind and not kind.startswith(IMAGE_PART_TYPES):
        raise UploadError(415, f"{name}: content type {kind} is not an image "
                          f"({', '.join(limits.formats)})")


# --------------------------------------------------------------------------- one image


def check_image(upload: Upload, limits: Limits) -> None:
    """Raise UploadError naming ``upload`` unless it is an image the pipeline decodes."""
    name, data = upload.name, upload.data
    if not data:
        raise UploadError(400, f"{name}: empty file")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: {len(data):,} bytes, over the {limits.max_bytes:,}"
                          "-byte cap (--max-bytes)")
    bomb = f"{name}: decompression bomb: {{}} pixels, over the {limits.max_pixels:,}-pixel cap"
    # Pillow warns between its limit and twice it, and raises beyond: the cap below is
    # ours, so its warning is noise here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                fmt = FORMAT_ALIASES.get(img.format or "", img.format or "")
                if fmt not in limits.formats:
                    raise UploadError(415, f"{name}: {img.format} images are not read "
                                      f"(the pipeline reads {', '.join(limits.formats)})")
                pixels = img.width * img.height
                if pixels > limits.max_pixels:
                    raise UploadError(422, bomb.format(f"{pixels:,}"))
                img.verify()  # structure and checksums, without decoding
            with Image.open(io.BytesIO(data)) as img:  # verify() leaves the image unusable
                img.load()  # every pixel: a truncated file fails here
        except UploadError:
            raise
        except UnidentifiedImageError:
            raise UploadError(422, f"{name}: not an image (or not one Pillow can identify)") \
                from None
        except Image.DecompressionBombError as err:
            found = re.search(r"\((\d+) pixels\)", str(err))
            shown = f"{int(found.group(1)):,}" if found else "too many"
            raise UploadError(422, bomb.format(shown)) from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            text = str(err).lower()
            if isinstance(err, EOFError) or "truncat" in text or "broken data stream" in text:
                raise UploadError(422, f"{name}: truncated image data") from None
            raise UploadError(422, f"{name}: cannot decode the image ({_named(err, name)})") \
                from None


def _named(err: BaseException, name: str) -> str:
    """Pillow's message about bytes in memory, naming the upload instead of an address."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", name, str(err))
