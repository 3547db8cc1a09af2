"""The image decoder every network stage shares (pipeline.data.input.load_image)."""

from __future__ import annotations

import io
import struct

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


# --------------------------------------------------------------------------- EXIF orientation
# JPEGs built byte by byte, so that each layout a camera, an editor or a broken file can
# have is there on purpose; the decoder must read from each the Orientation Pillow reads
# (prepare's reading: pipeline.core.image_formats.jpeg_orientation), or none.


def _segment(marker: int, payload: bytes) -> bytes:
    """A JPEG marker segment: 0xFF, the marker, its length (big-endian, counting itself)."""
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def _tiff(e: str, entries: list[tuple[int, int, int, bytes]], *, count: int | None = None,
          ifd: int = 8) -> bytes:
    """A TIFF block as EXIF holds it, in byte order ``e`` ("<" or ">"): IFD0 of ``entries``
    (tag, type, count, value bytes) at offset ``ifd``, claiming ``count`` entries (default:
    as many as there are); values longer than 4 bytes go after the IFD, at their offsets."""
    data_at = ifd + 2 + 12 * len(entries) + 4
    table, data = b"", b""
    for tag, typ, n, value in entries:
        if len(value) > 4:
            table += struct.pack(e + "HHLL", tag, typ, n, data_at + len(data))
            data += value + b"\0" * (len(value) % 2)
        else:
            table += struct.pack(e + "HHL", tag, typ, n) + value.ljust(4, b"\0")
    head = (b"II" if e == "<" else b"MM") + struct.pack(e + "HL", 42, ifd)
    claimed = len(entries) if count is None else count
    return (head + b"\0" * (ifd - 8) + struct.pack(e + "H", claimed) + table
            + b"\0\0\0\0" + data)


def _short(e: str, tag: int, value: int) -> tuple[int, int, int, bytes]:
    return tag, 3, 1, struct.pack(e + "H", value)


def _exif(tiff: bytes) -> bytes:
    return _segment(0xE1, b"Exif\0\0" + tiff)


_XMP = b"http://ns.adobe.com/xap/1.0/\0"  # how an APP1 segment holding XMP starts


def _xmp_app1(packet: bytes) -> bytes:
    return _segment(0xE1, _XMP + packet)


def _camera_tags(e: str) -> tuple[list, list]:
    """The IFD0 entries a camera writes before Orientation (0x0112) and after it."""
    return ([_short(e, 0x100, 4000), _short(e, 0x101, 3000), (0x10F, 2, 6, b"Canon\0"),
             (0x110, 2, 10, b"EOS 5D IV\0")],
            [(0x11A, 5, 1, struct.pack(e + "LL", 300, 1)),
             (0x11B, 5, 1, struct.pack(e + "LL", 300, 1)), _short(e, 0x128, 2),
             (0x132, 2, 20, b"2024:05:01 12:00:00\0"), _short(e, 0x213, 2),
             (0x8769, 4, 1, struct.pack(e + "L", 0))])


def _orientation_layouts() -> list[tuple[str, bytes]]:
    """(what it is, the file's bytes): EXIF in either byte order, after other segments,
    among other tags, with counts, values and offsets that are wrong; XMP packets, with
    EXIF or without; and files with neither."""
    pixels = Image.fromarray(np.random.default_rng(0).integers(0, 255, (16, 16, 3), np.uint8))
    buffer = io.BytesIO()
    pixels.save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    jfif_end = 4 + int.from_bytes(data[4:6], "big")
    jfif, body = data[2:jfif_end], data[jfif_end:]  # APP0, then tables, scan, EOI
    sos = body.index(b"\xff\xda")
    scan = sos + 2 + int.from_bytes(body[sos + 2:sos + 4], "big")

    def jpeg(*segments: bytes, first: bytes = jfif) -> bytes:
        return b"\xff\xd8" + first + b"".join(segments) + body

    layouts = [("a JPEG without EXIF", data)]
    for e, order in (("<", "little-endian"), (">", "big-endian")):
        def orientation(value: int, e: str = e) -> tuple[int, int, int, bytes]:
            return _short(e, 0x112, value)

        def exif(value: int, e: str = e) -> bytes:
            return _exif(_tiff(e, [orientation(value)]))

        before, after = _camera_tags(e)
        for value in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x0106, 0x0600, 0xFFFF):
            layouts.append((f"{order}: Orientation {value}", jpeg(exif(value))))
        for value in (3, 6, 9):
            layouts.append((f"{order}: Orientation {value} among a camera's tags",
                            jpeg(_exif(_tiff(e, [*before, orientation(value), *after])))))
        filler = [_short(e, 0xC000 + i, i % 9) for i in range(63)]
        layouts += [
            (f"{order}: Orientation 6 first of 11 tags",
             jpeg(_exif(_tiff(e, [orientation(6), *before, *after])))),
            (f"{order}: Orientation 6, 64th of 64 tags",
             jpeg(_exif(_tiff(e, [*filler, orientation(6)])))),
            (f"{order}: IFD0 at offset 40", jpeg(_exif(_tiff(e, [orientation(6)], ifd=40)))),
            # An IFD0 that claims fewer entries than follow: the rest is not read.
            (f"{order}: count 4, Orientation 6 is the 5th",
             jpeg(_exif(_tiff(e, [*before, orientation(6), *after], count=4)))),
            (f"{order}: count 2, Orientation 6 is the 5th",
             jpeg(_exif(_tiff(e, [*before, orientation(6), *after], count=2)))),
            (f"{order}: count 0, Orientation 6 is the 1st",
             jpeg(_exif(_tiff(e, [orientation(6), *after], count=0)))),
            # What comes before EXIF: nothing, or segments of every kind and length.
            (f"{order}: EXIF right after SOI", jpeg(exif(6), first=b"")),
            (f"{order}: EXIF after an ICC profile",
             jpeg(_segment(0xE2, b"ICC_PROFILE\0\x01\x01" + bytes(range(256)) * 3), exif(6))),
            (f"{order}: EXIF after XMP", jpeg(_xmp_app1(b"<x:xmpmeta/>"), exif(6))),
            (f"{order}: EXIF after a comment", jpeg(_segment(0xFE, b"made with care"), exif(6))),
            (f"{order}: EXIF after an empty comment", jpeg(_segment(0xFE, b""), exif(6))),
            (f"{order}: EXIF after APP15", jpeg(_segment(0xEF, b"vendor"), exif(6))),
            (f"{order}: EXIF after 14 APPn segments",
             jpeg(*(_segment(0xE2 + i % 13, b"app %d" % i) for i in range(14)), exif(6))),
            # Two EXIF segments: Pillow reads the first (it appends the second to it).
            (f"{order}: two EXIF segments, Orientation 3 then 6", jpeg(exif(3), exif(6))),
            # An EXIF block anywhere but in an APP1 segment is not EXIF.
            (f"{order}: a comment holding an EXIF block, then EXIF",
             jpeg(_segment(0xFE, b"Exif\0\0" + _tiff(e, [orientation(3)])), exif(6))),
            (f"{order}: a comment holding an EXIF block",
             jpeg(_segment(0xFE, b"Exif\0\0" + _tiff(e, [orientation(3)])))),
            # After SOS come the image's data: Pillow reads no segment there.
            (f"{order}: an APP1 with EXIF inside the scan",
             b"\xff\xd8" + jfif + body[:scan] + exif(6) + body[scan:]),
            # JPG0 (0xF0): a marker without a length for Pillow, which then finds the
            # EXIF segment its bytes hold, not the one after them; EXIF comes after
            # APPn and COM segments only, so the decoder stops at it.
            (f"{order}: a JPG0 marker holding EXIF 1, then EXIF 6",
             jpeg(_segment(0xF0, exif(1)), exif(6))),
        ]
        # IFD0's offset past 2 GB (before the file's start as a signed 32-bit number),
        # and an IFD at an odd offset that nothing points to.
        tiff = _tiff(e, [_short(e, 0x10F, 1), orientation(6)], ifd=23)
        tiff = tiff[:4] + struct.pack(e + "L", 0xFFFFFFF0) + tiff[8:]
        layouts.append((f"{order}: IFD0 offset 0xFFFFFFF0", jpeg(_exif(tiff), first=b"")))

    # XMP's tiff:Orientation, which Pillow (and so prepare) takes when EXIF has none.
    def xmp(orientation: bytes = b"") -> bytes:  # a packet as editors write it: padded
        return _xmp_app1(b"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:Description "
                         + orientation + b"/></x:xmpmeta>" + b" " * 64)

    xmp6, naming6 = xmp(b'tiff:Orientation="6"'), _segment(0xFE, b'tiff:Orientation="6"')
    layouts += [
        ("XMP Orientation 6 (an attribute), no EXIF", jpeg(xmp6)),
        ("XMP Orientation 8 (an element), no EXIF",
         jpeg(xmp(b"><tiff:Orientation>8</tiff:Orientation></rdf:Description"))),
        ("XMP Orientation 9, no EXIF", jpeg(xmp(b'tiff:Orientation="9"'))),
        ("XMP Orientation 6 right after SOI", jpeg(xmp6, first=b"")),
        ("XMP Orientation 6, EXIF without one",
         jpeg(_exif(_tiff(">", [_short(">", 0x128, 2)])), xmp6)),
        ("XMP Orientation 6, EXIF Orientation 3",
         jpeg(xmp6, _exif(_tiff("<", [_short("<", 0x112, 3)])))),
        ("XMP Orientation 6, EXIF Orientation 0",
         jpeg(_exif(_tiff(">", [_short(">", 0x112, 0)])), xmp6)),
        # Pillow keeps the last packet, empty or not.
        ("XMP Orientation 6, then a packet without one", jpeg(xmp6, xmp())),
        ("a packet without one, then XMP Orientation 6", jpeg(xmp(), xmp6)),
        ("XMP Orientation 6, then an empty packet", jpeg(xmp6, _xmp_app1(b""))),
        # A packet ends where its segment does, wherever the bytes around it say more.
        ("XMP that is only tiff:Orientation>6", jpeg(_xmp_app1(b"tiff:Orientation>6"))),
        ('XMP cut after tiff:Orientation=", then bytes 6"',
         jpeg(_xmp_app1(b'<x tiff:Orientation="') + b'6"/>')),
        ("an APP1 too short for the XMP header it starts",
         jpeg(_segment(0xE1, _XMP[:18]) + _XMP[18:] + b'<x tiff:Orientation="6"/>')),
        ("XMP without Orientation, then a comment naming one", jpeg(xmp(), naming6)),
        ("two XMP packets without Orientation, then a comment naming one",
         jpeg(xmp(), xmp(), naming6)),
        # Text outside an XMP segment is not XMP.
        ("XMP Orientation 6 in a comment", jpeg(_segment(0xFE, xmp6[4:]))),
        ("XMP Orientation 6 after SOS", b"\xff\xd8" + jfif + body[:scan] + xmp6 + body[scan:]),
        ("XMP Orientation 6 in UTF-16",
         jpeg(_xmp_app1('<x tiff:Orientation="6"/>'.encode("utf-16")))),
        ("XMP Orientation 6 after bytes that are not UTF-8",
         jpeg(_xmp_app1(b'\xff\xfe\x80<x tiff:Orientation="6"/>'))),
    ]
    png = io.BytesIO()
    pixels.save(png, "PNG")
    return [*layouts, ("a PNG", png.getvalue())]


def _pillow_orientation(data: bytes) -> int:
    """Orientation as Pillow reads it (what prepare and ImageOps.exif_transpose turn by),
    1 when there is none or it is not one of the eight."""
    with Image.open(io.BytesIO(data)) as img:
        value = img.getexif().get(0x0112)
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # Pillow, on a bad offset
def test_exif_orientation_is_what_pillow_reads_in_every_jpeg_layout():
    """A photo is turned in training and serving exactly when prepare (Pillow) turns it:
    the decoder's Orientation, read in the graph as tf.data's map reads it, is Pillow's
    for every layout, malformed ones included; bytes cut short before the Orientation
    entry (nothing Pillow opens) read as no turn, without an error."""
    from pipeline.data.input import exif_orientation_of

    layouts = _orientation_layouts()
    cut = [b""] + [dict(layouts)[f"{order}: EXIF right after SOI"][:n]
                   for order in ("little-endian", "big-endian")
                   for n in (1, 2, 3, 5, 11, 12, 16, 20, 22)]  # the entry starts at 22
    ours = tf.data.Dataset.from_tensor_slices([data for _, data in layouts] + cut).map(
        exif_orientation_of).batch(len(layouts) + len(cut)).get_single_element().numpy()
    theirs = [_pillow_orientation(data) for _, data in layouts]
    wrong = [(name, int(got), want) for (name, _), got, want
             in zip(layouts, ours[:len(layouts)], theirs, strict=True) if got != want]
    assert not wrong, f"(layout, decoder, Pillow): {wrong}"
    assert set(theirs) == set(range(1, 9))
    assert list(ours[len(layouts):]) == [1] * len(cut)
