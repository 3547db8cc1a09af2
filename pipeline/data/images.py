"""Image checks: decode every image once, record what was found, judge it.

:func:`inspect_all` reads each file once (its size and sha256 come from those
bytes) and decodes it fully with Pillow (``img.load()``, so a truncated file is
caught, not just a bad header), returning one row of facts per image; those
become manifest columns that the Great Expectations suite asserts. Files are
opened read-only.

Modes. The pipeline decodes with ``tf.io.decode_image(channels=3)``, which
turns L, P, RGBA (alpha dropped), CMYK JPEGs and 16-bit PNGs (scaled by
``>> 8``) into 8-bit RGB itself; those images are ``convert`` here and need no
copy. BMP is the exception: TensorFlow's BMP decoder ignores palettes and reads
only 8-, 24- and 32-bit uncompressed pixels, so palette, 1-, 4- and 16-bit and
RLE-compressed BMPs (all of which Pillow reads) are rejected.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pandas as pd
from PIL import Image, ImageOps, UnidentifiedImageError

from pipeline.core.image_formats import EXTENSION_FORMATS, FORMAT_ALIASES, jpeg_orientation
from pipeline.core.params import ImagesParams, ValidateParams
from pipeline.core.pixels import TooManyPixels, bomb_pixels, check_pixels
from pipeline.data.phash import phash

# One row per image: what inspect_all returns (manifest columns, see pipeline.data.manifest).
COLUMNS = [
    "path", "bytes", "sha256", "decodable", "truncated", "format", "ext_mismatch", "mode",
    "bits", "width", "height", "orientation", "aspect", "phash", "issue", "action",
]  # fmt: skip
Action = Literal["ok", "convert", "reject"]
# The issue of a file whose bytes cannot be read (permissions, I/O): left out under every
# policy (pipeline.data.policy), since no validation run can see it either.
CANNOT_READ = "cannot read"
# EXIF Orientation values 5-8 turn the picture a quarter: width and height swap.
_TRANSPOSED = frozenset({5, 6, 7, 8})


@dataclass(frozen=True)
class ImagePolicy:
    """What an image must be to enter the manifest: params' ``data.images`` and sides.

    ``allowed_formats`` are Pillow format names. ``modes_convert`` are Pillow modes
    accepted and turned into 8-bit RGB at load (the pipeline's TF decoder does it);
    any other mode (LAB, HSV, YCbCr, 32-bit I/F, ...) is rejected. ``max_pixels`` is
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), set while checking.
    """

    allowed_formats: frozenset[str]
    modes_convert: frozenset[str]
    min_side: int
    max_side: int
    max_aspect: float
    max_pixels: int
    exif_orientation: bool = True

    @classmethod
    def from_params(cls, images: ImagesParams, validate: ValidateParams) -> ImagePolicy:
        """``data.images``, with the sides of ``validate`` so that prepare's verdicts and
        the validate stage's suite agree."""
        return cls(
            allowed_formats=frozenset(images.formats),
            modes_convert=frozenset(images.modes),
            min_side=validate.min_side,
            max_side=validate.max_side,
            max_aspect=images.max_aspect,
            max_pixels=images.max_pixels,
            exif_orientation=images.exif_orientation,
        )


@contextlib.contextmanager
def pillow_limits(policy: ImagePolicy) -> Iterator[None]:
    """Pillow's bomb guard at ``policy.max_pixels``, its warning turned into an error.

    Both are process-global, so this is entered once around a whole batch (by the
    calling thread, before any worker starts) and restored after; two concurrent
    batches with different limits in one process are not supported.
    """
    previous = Image.MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = policy.max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = previous


# --------------------------------------------------------------------------- one image


def _row(rel: str, **facts) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(path=rel, sha256="", decodable=False, truncated=False, format="",
               ext_mismatch=False, mode="", bits=None, phash="", issue="", action="reject")
    row.update(facts)
    return row


def _inspect(path: Path, rel: str, policy: ImagePolicy, root: Path | None) -> dict:
    """Decode one image and return its row (see COLUMNS), within the Pillow limits the caller
    set (``pillow_limits``). Never raises for a bad file.

    ``root`` (default: ``path`` minus ``rel``) is the data folder: a file that is a
    symbolic link resolving outside it is rejected, since the data set would then
    depend on files the user did not hand in.
    """
    if root is None:
        root = Path(*path.parts[: len(path.parts) - len(Path(rel).parts)])
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            return _row(rel, issue="symbolic link outside the data folder")
        data = path.read_bytes()  # once: the size, the sha256 and the decode all use it
    except OSError as err:
        return _row(rel, issue=f"{CANNOT_READ}: {err.strerror or err}")
    file = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    if not data:
        return _row(rel, **file, issue="zero-byte file")

    try:
        img = Image.open(io.BytesIO(data))
        img.filename = rel  # Pillow's messages name the file, relative: no machine paths
    except UnidentifiedImageError:
        return _row(rel, **file, issue="not an image")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        return _row(rel, **file, issue=str(TooManyPixels(bomb_pixels(err), policy.max_pixels)))
    except OSError as err:
        return _row(rel, **file, issue=f"unreadable: {_named(err, rel)}")

    with img:
        fmt = img.format or ""
        ext_format = EXTENSION_FORMATS.get(path.suffix.lower())
        orientation = jpeg_orientation(img) if policy.exif_orientation else 1
        width, height = (img.height, img.width) if orientation in _TRANSPOSED else img.size
        facts = dict(
            **file,
            format=fmt,
            ext_mismatch=ext_format is not None and FORMAT_ALIASES.get(fmt, fmt) != ext_format,
            mode=img.mode,
            bits=_bits(img),
            width=width,  # as the network sees it: after the EXIF orientation
            height=height,
            orientation=orientation,
            aspect=round(max(img.size) / max(min(img.size), 1), 3),
        )
        unreadable_bmp = _bmp_problem(img)  # from the tile, which load() empties
        try:  # the pipeline's rule, even if Pillow's own guard is off
            check_pixels(img.width * img.height, policy.max_pixels)
            img.load()
        except TooManyPixels as err:
            return _row(rel, **facts, issue=str(err))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            return _row(rel, **facts, issue=str(TooManyPixels(bomb_pixels(err),
                                                                policy.max_pixels)))
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            truncated = _is_truncation(err)
            why = "truncated" if truncated else f"cannot decode: {_named(err, rel)}"
            return _row(rel, **facts, truncated=truncated, issue=why)
        upright = ImageOps.exif_transpose(img) if orientation != 1 else img
        facts.update(decodable=True, phash=phash(upright))

    issues, action = _judge(facts, policy, [unreadable_bmp] if unreadable_bmp else [])
    return _row(rel, **facts, issue="; ".join(issues), action=action)


def _named(err: BaseException, rel: str) -> str:
    """Pillow's message about a file read from memory, naming it by its relative path only:
    the manifest must not depend on the machine or on object addresses."""
    return re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", rel, str(err))


def _is_truncation(err: BaseException) -> bool:
    text = str(err).lower()
    return isinstance(err, EOFError) or "truncat" in text or "broken data stream" in text


def _bits(img: Image.Image) -> int:
    """Bits per channel as stored: a 16-bit RGB PNG opens as mode RGB, so read the tile."""
    if img.mode.startswith("I;16"):
        return 16
    if img.mode in ("I", "F"):
        return 32
    if img.mode == "1":
        return 1
    raw = ""
    with contextlib.suppress(AttributeError, IndexError, TypeError):
        args = img.tile[0][3]
        raw = args[0] if isinstance(args, tuple) else str(args)
    return 16 if ";16" in str(raw) else 8


# The pixel layouts TensorFlow's BMP decoder reads right: 24- and 32-bit colour, and
# 8-bit read as grey levels (right only for a grey palette, which Pillow calls "L").
_TF_BMP_RAWMODES = frozenset({"BGR", "BGRX", "BGRA", "L"})


def _bmp_problem(img: Image.Image) -> str | None:
    """Why ``tf.io.decode_image`` would misread this BMP, or None.

    It ignores BMP palettes (8-bit colour pixels come out as grey levels of their
    palette index: a silently wrong image), fails on 1-, 4- and 16-bit pixels, and
    reads RLE-compressed pixels as raw ones. Pillow reads all of them.
    """
    if img.format != "BMP" or not img.tile:
        return None
    tile = img.tile[0]
    raw = str(tile[3][0] if isinstance(tile[3], tuple) else tile[3])
    if tile[0] != "raw":
        what = "RLE-compressed"
    elif raw in _TF_BMP_RAWMODES:
        return None
    elif raw == "P" or raw.startswith("P;"):
        what = "palette (colour-indexed)"
    elif raw.startswith("1"):
        what = "1-bit"
    elif raw.startswith("BGR;1"):
        what = "16-bit"
    else:
        what = f"{raw}"
    return f"BMP with {what} pixels, which TensorFlow misreads (save it as PNG)"


def _judge(
    facts: dict, policy: ImagePolicy, rejects: list[str] | None = None
) -> tuple[list[str], Action]:
    """The issues of a decoded image and the action they call for."""
    rejects, converts = list(rejects or []), []
    fmt = FORMAT_ALIASES.get(facts["format"], facts["format"])
    if fmt not in policy.allowed_formats:
        rejects.append(f"format {facts['format']} not allowed")
    mode, bits = facts["mode"], facts["bits"]
    if mode not in policy.modes_convert:
        rejects.append(f"mode {mode} not allowed")
    elif bits == 16:
        converts.append("16-bit converted")
    elif mode != "RGB":
        converts.append(f"{mode} converted")
    short, long = min(facts["width"], facts["height"]), max(facts["width"], facts["height"])
    if short < policy.min_side:
        rejects.append(f"too small {facts['width']}x{facts['height']} < {policy.min_side}")
    if long > policy.max_side:
        rejects.append(f"too large {facts['width']}x{facts['height']} > {policy.max_side}")
    if facts["aspect"] > policy.max_aspect:
        rejects.append(f"aspect {facts['aspect']:g} > {policy.max_aspect:g}")
    if rejects:  # what it would take to convert is moot once rejected
        return rejects, "reject"
    return converts, "convert" if converts else "ok"


# --------------------------------------------------------------------------- all images


def inspect_all(
    root: Path, rels: Sequence[str], policy: ImagePolicy, workers: int | None = None
) -> pd.DataFrame:
    """Each image's checks (``_inspect``) over ``rels`` (relative to ``root``), in threads,
    in order.

    Threads, not processes: Pillow releases the GIL while decoding and reading, and
    the rows need no pickling. A tqdm bar shows progress on stderr.
    """
    from tqdm import tqdm

    root = Path(root)
    workers = workers or min(32, (os.cpu_count() or 1) + 4)
    with pillow_limits(policy), ThreadPoolExecutor(max_workers=workers) as pool:
        rows = list(tqdm(
            pool.map(lambda rel: _inspect(root / rel, rel, policy, root), rels),
            total=len(rels), desc="inspect images", unit="img", mininterval=2.0,
            disable=len(rels) < 2,
        ))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("bytes", "bits", "width", "height", "orientation"):
        frame[col] = frame[col].astype("Int64")
    frame["aspect"] = frame["aspect"].astype("Float64")
    return frame
