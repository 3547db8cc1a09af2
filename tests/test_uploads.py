"""The upload checks on their own, without a server or a model: where each cap starts, what
status and line each refusal gives (test_serve.py drives the same checks over HTTP)."""

from __future__ import annotations

import asyncio
import io
import struct
import warnings
import zlib

import pytest
from helpers import encoded, noise, png_chunk
from PIL import Image

from pipeline.serving.uploads import (
    Limits,
    Upload,
    UploadError,
    capped_receive,
    check_count,
    check_decodes,
    check_header,
)


def png_header(width: int, height: int) -> bytes:
    """A PNG's signature, header and a few bytes of pixel data: what Pillow reads to open
    it, not the pixels it claims."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr)
            + png_chunk(b"IDAT", zlib.compress(b"\0" * 64)))


def refused(call, *args) -> tuple[int, str]:
    with pytest.raises(UploadError) as err:
        call(*args)
    return err.value.status, str(err.value)


def body(chunks: list[bytes], declared: str | None, cap: int) -> int:
    """The bytes an ASGI app reads through capped_receive from a body sent in ``chunks``."""
    async def run() -> int:
        sent = iter(chunks)

        async def receive() -> dict:
            return {"type": "http.request", "body": next(sent, b"")}

        wrapped = capped_receive(receive, declared, cap)
        return sum([len((await wrapped())["body"]) for _ in chunks])

    return asyncio.run(run())


def test_the_request_cap_holds_exactly_its_bytes():
    """A body of exactly --max-bytes is read whole, declared or streamed; one byte more is
    413, told by its Content-Length before any byte is read, or by the stream."""
    assert body([b"a" * 6, b"b" * 4], "10", 10) == 10
    assert body([b"a" * 6, b"b" * 4], None, 10) == 10
    assert refused(body, [b"a" * 11], "11", 10) == (
        413, "the upload is over the 10-byte cap (--max-bytes): Content-Length is 11 bytes")
    assert refused(body, [b"a" * 6, b"b" * 5], None, 10) == (
        413, "the upload is over the 10-byte cap (--max-bytes)")
    assert refused(body, [b"a"], "ten", 10) == (400, "Content-Length 'ten' is not a number")


def test_the_image_count_holds_exactly_max_images():
    limits = Limits(max_images=3)
    check_count(3, limits)
    assert refused(check_count, 4, limits) == (413, "4 images in one request; at most 3 "
                                                    "(--max-images)")
    assert refused(check_count, 0, limits) == (400, "no image in the request")


def test_one_image_of_exactly_max_bytes_is_read_and_one_byte_more_is_refused():
    data = encoded(noise(8, 8), "PNG")
    assert check_header(Upload("a.png", data), Limits(max_bytes=len(data))) == 64
    assert refused(check_header, Upload("a.png", data), Limits(max_bytes=len(data) - 1)) == (
        413, f"a.png: {len(data):,} bytes, over the {len(data) - 1:,}-byte cap (--max-bytes)")


def test_a_format_the_pipeline_does_not_read_names_those_it_does():
    tiff = encoded(noise(4, 4), "TIFF")
    assert refused(check_header, Upload("scan.tiff", tiff), Limits()) == (
        415, "scan.tiff: TIFF images are not read (the pipeline reads JPEG, PNG, GIF, BMP)")


def test_a_camera_mpo_is_read_as_the_jpeg_it_is():
    """Cameras save MPO (a JPEG with a second picture after it): Pillow calls it MPO, the
    decoder reads it as JPEG, so the server takes it."""
    out = io.BytesIO()
    Image.new("RGB", (6, 4), "red").save(out, "MPO", save_all=True,
                                         append_images=[Image.new("RGB", (6, 4), "blue")])
    assert Image.open(io.BytesIO(out.getvalue())).format == "MPO"
    assert check_header(Upload("camera.jpg", out.getvalue()), Limits(formats=("JPEG",))) == 24


def test_a_header_pillow_cannot_read_is_422_naming_the_upload_and_why():
    """A BMP whose info header is of a size Pillow does not know (32 bytes)."""
    bmp = b"BM" + struct.pack("<IHHI", 70, 0, 0, 46) + struct.pack("<I", 32) + b"\0" * 28
    assert refused(check_header, Upload("scan.bmp", bmp), Limits()) == (
        422, "scan.bmp: cannot decode the image (Unsupported BMP header type (32))")


def test_bytes_that_are_no_image_are_422_naming_the_upload():
    assert refused(check_decodes, Upload("notes.png", b"plain text, not pixels")) == (
        422, "notes.png: not an image (or not one Pillow can identify)")


def test_pillows_own_bomb_warning_is_not_the_servers_business():
    """An image between Pillow's pixel limit and twice it, within the server's own
    --max-pixels: the header check passes it and the decode check names it truncated (its
    pixels are not there), with no warning or other exception escaping either."""
    big = png_header(10_000, 10_000)  # 1e8 pixels: over Pillow's 89.5 M, under twice it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_header(Upload("big.png", big), Limits(max_pixels=2 * 10**8)) == 10**8
        other = png_header(10_000, 9_500)  # another size: Python warns once per text
        status, said = refused(check_decodes, Upload("big.png", other))
    assert (status, said) == (422, "big.png: truncated image data")
