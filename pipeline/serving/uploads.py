"""What an upload must be before TensorFlow sees it; each failure is a 4xx naming the problem.

Checks, in order: the request's size and time (streamed, so a lying or missing
Content-Length cannot push more than the cap into memory, and a body trickling in cannot
hold the request past its deadline), its content type, an empty body, then per image:
empty, Pillow can open it, a format the pipeline reads (pipeline/core/image_formats.py), the
pipeline's pixel rule (pipeline/core/pixels.py), all from the headers; then the
request's pixels together against its budget, so no pixel of a request over it is
decoded; then each image's full verify + load, which catches truncated and corrupt data.
"""

from __future__ import annotations

import asyncio
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
from pipeline.core.image_formats import FORMAT_ALIASES, TF_FORMATS
from pipeline.core.pixels import DEFAULT_MAX_PIXELS, TooManyPixels, bomb_pixels, check_pixels

DEFAULT_MAX_BYTES = 10_000_000
DEFAULT_MAX_IMAGES = 32
DEFAULT_BODY_TIMEOUT = 30.0  # seconds for a whole body: 10 MB at 2.7 Mbit/s
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
    # Every image of one request together: what one request may cost to decode.
    max_request_pixels: int = DEFAULT_MAX_PIXELS
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds from the headers to the body's end
    formats: tuple[str, ...] = TF_FORMATS  # Pillow names
    pixels_setting: str = "--max-pixels"  # where max_pixels came from, for the message


@dataclass(frozen=True)
class Upload:
    name: str  # the file name, or images[i] of a JSON list
    data: bytes


# --------------------------------------------------------------------------- the body


def capped_receive(receive: Callable[[], Awaitable[dict]], declared: str | None,
                   max_bytes: int, timeout: float = DEFAULT_BODY_TIMEOUT
                   ) -> Callable[[], Awaitable[dict]]:
    """An ASGI ``receive`` that stops the request once its body passes ``max_bytes``, or
    when it has not all arrived ``timeout`` seconds from now (408)."""
    too_big = f"the upload is over the {max_bytes:,}-byte cap (--max-bytes)"
    deadline = asyncio.get_running_loop().time() + timeout
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
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise UploadError(408, f"the body did not all arrive within {timeout:g} s "
                              "(--body-timeout)") from None
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


def check_header(upload: Upload, limits: Limits) -> int:
    """Its pixels (width x height), from its header, once it is an image of a format the
    pipeline reads and within the pixel rule; else UploadError. No pixel is decoded."""
    name, data = upload.name, upload.data
    if not data:
        raise UploadError(400, f"{name}: empty file")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"{name}: {len(data):,} bytes, over the {limits.max_bytes:,}"
                          "-byte cap (--max-bytes)")
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
                return check_pixels(img.width * img.height, limits.max_pixels,
                                    limits.pixels_setting)
        except UploadError:
            raise
        except TooManyPixels as err:
            raise UploadError(422, f"{name}: {err}") from None
        except Image.DecompressionBombError as err:  # over twice Pillow's own limit
            bomb = TooManyPixels(bomb_pixels(err), limits.max_pixels, limits.pixels_setting)
            raise UploadError(422, f"{name}: {bomb}") from None
        except UnidentifiedImageError:
            raise UploadError(422, f"{name}: not an image (or not one Pillow can identify)") \
                from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise _undecodable(name, err) from None


def check_request_pixels(pixels: list[int], limits: Limits) -> None:
    """The request's images together within ``max_request_pixels`` (413), so that one
    request of many large-but-legal images cannot hold the server for long."""
    total = sum(pixels)
    if total > limits.max_request_pixels:
        raise UploadError(413, f"{len(pixels)} images of {total:,} pixels together, over the "
                          f"{limits.max_request_pixels:,}-pixel budget of one request "
                          "(--max-request-pixels); send them in several requests")


def check_decodes(upload: Upload) -> None:
    """A full verify and load: truncated and corrupt data fail here (422)."""
    name, data = upload.name, upload.data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data)) as img:
                img.verify()  # structure and checksums, without decoding
            with Image.open(io.BytesIO(data)) as img:  # verify() leaves the image unusable
                img.load()  # every pixel: a truncated file fails here
        except UnidentifiedImageError:
            raise UploadError(422, f"{name}: not an image (or not one Pillow can identify)") \
                from None
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            raise _undecodable(name, err) from None


def _undecodable(name: str, err: BaseException) -> UploadError:
    text = str(err).lower()
    if isinstance(err, EOFError) or "truncat" in text or "broken data stream" in text:
        return UploadError(422, f"{name}: truncated image data")
    # Pillow names the in-memory file (``<_io.BytesIO object at 0x...>``) only in
    # UnidentifiedImageError, answered before this as "not an image".
    return UploadError(422, f"{name}: cannot decode the image ({err})")
