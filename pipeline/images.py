"""Image-level checks: decode every image once, record what was found, apply the policy.

:func:`inspect_all` decodes each image fully with Pillow (``img.load()``, so a
truncated file is caught, not just a bad header) and returns one row of facts
per image; those become manifest columns that the Great Expectations suite
asserts. :func:`apply_policy` then decides what stays in the manifest. Nothing
here writes, moves or deletes a user's file: files are opened read-only, and
"dropping" a file means leaving it out of the manifest with the reason recorded.

Modes. The pipeline decodes with ``tf.io.decode_image(channels=3)``, which
turns L, P, RGBA (alpha dropped), CMYK JPEGs and 16-bit PNGs (scaled by
``>> 8``) into 8-bit RGB itself; those images are ``convert`` here and need no
copy. BMP is the exception: TensorFlow's BMP decoder ignores palettes and reads
only 8-, 24- and 32-bit uncompressed pixels, so palette, 1-, 4- and 16-bit and
RLE-compressed BMPs (all of which Pillow reads) are rejected. Pillow's own
``convert("RGB")`` *clips* 16-bit grayscale to 255 (white), so :func:`to_rgb`
scales instead; it is what anything reading images with
Pillow (the perceptual hash here) must use to see what TensorFlow sees.
"""

from __future__ import annotations

import contextlib
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from pipeline.config import Config

# File extensions and the Pillow format they promise.
EXTENSION_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".gif": "GIF", ".bmp": "BMP",
    ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP",
}  # fmt: skip
# Pillow names some JPEGs by their container: multi-picture (camera) JPEGs are
# "MPO", and TensorFlow reads them as plain JPEGs.
FORMAT_ALIASES = {"MPO": "JPEG"}
COLUMNS = [
    "path", "decodable", "truncated", "format", "ext_mismatch", "mode", "bits", "width",
    "height", "aspect", "phash", "issue", "action",
]  # fmt: skip
SPLIT_ORDER = ("train", "val", "test")
Action = Literal["ok", "convert", "reject"]


@dataclass(frozen=True)
class ImagePolicy:
    """What an image must be to enter the manifest.

    ``allowed_formats`` are Pillow format names; the default is what
    ``tf.io.decode_image`` reads. ``modes_convert`` are Pillow modes accepted and
    turned into 8-bit RGB at load (the pipeline's TF decoder does it); any other
    mode (LAB, HSV, YCbCr, 32-bit I/F, ...) is rejected. ``max_pixels`` is
    Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``), set while
    checking; its default is Pillow's own.
    """

    allowed_formats: frozenset[str] = frozenset({"JPEG", "PNG", "GIF", "BMP"})
    modes_convert: frozenset[str] = frozenset(
        {"RGB", "L", "LA", "RGBA", "RGBX", "P", "PA", "1", "CMYK",
         "I;16", "I;16L", "I;16B", "I;16N"}  # fmt: skip
    )
    min_side: int = 16
    max_side: int = 8192
    max_aspect: float = 10.0
    max_pixels: int = 89_478_485  # Pillow's default: 0.25 GB of 24-bit pixels


def policy_for(cfg: Config) -> ImagePolicy:
    """The policy of params.yaml: ``data.images``, with the sides of ``validate`` so that
    prepare's verdicts and the validate stage's suite agree."""
    im = cfg.data.images
    return ImagePolicy(
        allowed_formats=frozenset(im.formats),
        modes_convert=frozenset(im.modes),
        min_side=cfg.validate_.min_side,
        max_side=cfg.validate_.max_side,
        max_aspect=im.max_aspect,
        max_pixels=im.max_pixels,
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


def inspect_image(
    path: Path, rel: str, policy: ImagePolicy, root: Path | None = None
) -> dict:
    """Decode one image and return its row (see COLUMNS). Never raises for a bad file.

    ``root`` (default: ``path`` minus ``rel``) is the data folder: a file that is a
    symbolic link resolving outside it is rejected, since the data set would then
    depend on files the user did not hand in.
    """
    with pillow_limits(policy):
        return _inspect(Path(path), rel, policy, root)


def _row(rel: str, **facts) -> dict:
    row = dict.fromkeys(COLUMNS)
    row.update(path=rel, decodable=False, truncated=False, format="", ext_mismatch=False,
               mode="", bits=None, phash="", issue="", action="reject")
    row.update(facts)
    return row


def _inspect(path: Path, rel: str, policy: ImagePolicy, root: Path | None) -> dict:
    if root is None:
        root = Path(*path.parts[: len(path.parts) - len(Path(rel).parts)])
    try:
        if not path.resolve().is_relative_to(root.resolve()):
            return _row(rel, issue="symbolic link outside the data folder")
        size = path.stat().st_size
    except OSError as err:
        return _row(rel, issue=f"unreadable: {err.strerror or err}")
    if size == 0:
        return _row(rel, issue="zero-byte file")

    try:
        img = Image.open(path)
    except UnidentifiedImageError:
        return _row(rel, issue="not an image")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        found = re.search(r"\((\d+) pixels\)", str(err))
        shown = f"{int(found.group(1)):,} pixels" if found else "size"
        return _row(rel, issue=f"decompression bomb ({shown} > {policy.max_pixels:,})")
    except OSError as err:  # relative path only: the manifest must not depend on the machine
        return _row(rel, issue=f"unreadable: {str(err).replace(str(path), rel)}")

    with img:
        fmt = img.format or ""
        ext_format = EXTENSION_FORMATS.get(path.suffix.lower())
        facts = dict(
            format=fmt,
            ext_mismatch=ext_format is not None and FORMAT_ALIASES.get(fmt, fmt) != ext_format,
            mode=img.mode,
            bits=_bits(img),
            width=img.width,
            height=img.height,
            aspect=round(max(img.size) / max(min(img.size), 1), 3),
        )
        unreadable_bmp = _bmp_problem(img)  # from the tile, which load() empties
        if img.width * img.height > policy.max_pixels:  # guard even if Pillow's is off
            pixels = img.width * img.height
            return _row(rel, **facts,
                        issue=f"decompression bomb ({pixels:,} pixels > {policy.max_pixels:,})")
        try:
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            return _row(rel, **facts, issue="decompression bomb")
        except (OSError, SyntaxError, ValueError, EOFError) as err:
            truncated = _is_truncation(err)
            why = "truncated" if truncated else f"cannot decode: {str(err).replace(str(path), rel)}"
            return _row(rel, **facts, truncated=truncated, issue=why)
        facts.update(decodable=True, phash=phash(img))

    issues, action = _judge(facts, policy, [unreadable_bmp] if unreadable_bmp else [])
    return _row(rel, **facts, issue="; ".join(issues), action=action)


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


# --------------------------------------------------------------------------- pixels


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


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


# --------------------------------------------------------------------------- all images


def inspect_all(
    root: Path, rels: Sequence[str], policy: ImagePolicy, workers: int | None = None
) -> pd.DataFrame:
    """:func:`inspect_image` over ``rels`` (relative to ``root``) in threads, in order.

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
    for col in ("bits", "width", "height"):
        frame[col] = frame[col].astype("Int64")
    frame["aspect"] = frame["aspect"].astype("Float64")
    return frame


# --------------------------------------------------------------------------- duplicates


def _as_uint64(hashes: Sequence[str]) -> np.ndarray:
    return np.array([int(h, 16) for h in hashes], dtype=np.uint64)


def _popcount(x: np.ndarray) -> np.ndarray:
    if hasattr(np, "bitwise_count"):  # NumPy >= 2.0
        return np.bitwise_count(x)
    as_bytes = x.view(np.uint8).reshape(*x.shape, 8)
    return np.unpackbits(as_bytes, axis=-1).sum(axis=-1)


def _close_pairs(
    hashes: np.ndarray, idx: np.ndarray, threshold: int, chunk: int
) -> Iterator[tuple[int, int]]:
    """Pairs (i < j) of ``idx`` (sorted) within ``threshold`` bits, ``chunk`` rows at a time."""
    for start in range(0, len(idx), chunk):
        rows = idx[start:start + chunk]
        cols = idx[start:]  # pairs with an earlier row were found by an earlier chunk
        close = _popcount(hashes[rows][:, None] ^ hashes[cols][None, :]) <= threshold
        for r, c in zip(*np.nonzero(close), strict=True):
            if rows[r] < cols[c]:
                yield int(rows[r]), int(cols[c])


def near_duplicates(
    df: pd.DataFrame, threshold: int, chunk: int = 1024
) -> list[tuple[str, str, int]]:
    """Pairs (path_a, path_b, distance) whose ``phash`` differ in at most ``threshold`` bits.

    Rows without a hash are ignored; ``path_a`` comes before ``path_b`` in ``df``.

    threshold <= 3: multi-index hashing. Cut the 64 bits into 4 bands of 16; two
    hashes within 3 bits agree exactly on at least one band (pigeonhole), so only
    pairs sharing a band value are compared: near-linear on real data (a big
    bucket means many true near-duplicates, e.g. blank images).
    threshold > 3: every pair, XOR + popcount in NumPy over ``chunk`` rows at a
    time, so memory stays at chunk x n; 100k images (5e9 pairs) take ~30 s.
    """
    rows = df[df["phash"].fillna("").astype(str) != ""]
    paths = rows["path"].tolist()
    if len(paths) < 2 or threshold < 0:
        return []
    hashes = _as_uint64(rows["phash"].tolist())
    pairs: set[tuple[int, int]] = set()
    if threshold <= 3:
        for band in range(4):
            keys = (hashes >> np.uint64(16 * band)) & np.uint64(0xFFFF)
            order = np.argsort(keys, kind="stable")
            bounds = np.flatnonzero(np.diff(keys[order])) + 1
            for group in np.split(order, bounds):
                if len(group) > 1:
                    pairs.update(_close_pairs(hashes, np.sort(group), threshold, chunk))
    else:
        pairs.update(_close_pairs(hashes, np.arange(len(hashes)), threshold, chunk))
    return [
        (paths[i], paths[j], int(_popcount(hashes[i] ^ hashes[j])))
        for i, j in sorted(pairs)
    ]


# --------------------------------------------------------------------------- policy


def apply_policy(
    df: pd.DataFrame,
    bad: Literal["fail", "quarantine"] = "fail",
    duplicates: Literal["fail", "drop"] = "fail",
    near_threshold: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(kept rows, dropped rows with a ``reason``). Never touches a file.

    ``df`` holds :func:`inspect_all`'s columns plus ``split`` and ``sha256`` when
    known. Rejected images (``action == "reject"``) are dropped under
    ``quarantine``; under ``fail`` they stay, for the validate stage's suite to fail
    on, naming them.

    Duplicates: the same bytes (``sha256``) or hashes within ``near_threshold`` bits
    (None: exact only). Rows are ordered train, val, test, then by path; a row is a
    copy if an earlier row that is not itself a copy is its duplicate, so a train
    image is kept and its copy in test is the one reported or dropped. Columns
    added: ``duplicate_of`` (the kept original, "" if none), ``duplicate_distance``
    (0 for identical bytes) and ``leakage`` (original and copy in different
    splits). ``drop`` drops the copies; ``fail`` keeps them (within a split the
    suite warns, across splits it fails).
    """
    if bad not in ("fail", "quarantine"):
        raise ValueError(f"bad must be fail or quarantine, got {bad!r}")
    if duplicates not in ("fail", "drop"):
        raise ValueError(f"duplicates must be fail or drop, got {duplicates!r}")
    frame = df.copy()
    frame["duplicate_of"] = ""
    frame["duplicate_distance"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    frame["leakage"] = False
    reasons = pd.Series("", index=frame.index, dtype=object)

    rejected = frame["action"] == "reject"
    if bad == "quarantine":
        reasons[rejected] = "quarantined: " + frame.loc[rejected, "issue"].astype(str)

    usable = frame[~rejected]
    split = usable["split"] if "split" in usable else pd.Series("", index=usable.index)
    rank = split.map({s: i for i, s in enumerate(SPLIT_ORDER)}).fillna(len(SPLIT_ORDER))
    ordered = usable.assign(_rank=rank).sort_values(["_rank", "path"], kind="stable")
    position = {label: i for i, label in enumerate(ordered.index)}
    by_path = {p: label for label, p in zip(ordered.index, ordered["path"], strict=True)}

    neighbours: dict[object, dict[object, int]] = {label: {} for label in ordered.index}
    if "sha256" in ordered:
        for _, group in ordered[ordered["sha256"].fillna("") != ""].groupby("sha256"):
            for a in group.index:
                for b in group.index:
                    if a != b:
                        neighbours[a][b] = 0
    if near_threshold is not None:
        for pa, pb, dist in near_duplicates(ordered, near_threshold):
            a, b = by_path[pa], by_path[pb]
            neighbours[a].setdefault(b, dist)
            neighbours[b].setdefault(a, dist)

    originals: set[object] = set()
    for label in ordered.index:
        earlier = sorted(
            (position[other], other) for other in neighbours[label]
            if position[other] < position[label] and other in originals
        )
        if not earlier:
            originals.add(label)
            continue
        first = earlier[0][1]
        dist = neighbours[label][first]
        leak = str(split[label]) != str(split[first])
        frame.at[label, "duplicate_of"] = frame.at[first, "path"]
        frame.at[label, "duplicate_distance"] = dist
        frame.at[label, "leakage"] = leak
        if duplicates == "drop":
            kind = "exact duplicate" if dist == 0 else f"near duplicate (phash distance {dist})"
            where = (f", leakage {split[first]} -> {split[label]}" if leak
                     else f" in {split[label]}" if split[label] else "")
            reasons[label] = f"{kind} of {frame.at[first, 'path']}{where}"

    dropped_mask = reasons != ""
    kept = frame[~dropped_mask].reset_index(drop=True)
    dropped = frame[dropped_mask].assign(reason=reasons[dropped_mask]).reset_index(drop=True)
    return kept, dropped


def problems(kept: pd.DataFrame, limit: int = 20) -> list[str]:
    """One line per kept row that breaks a rule (``path: rule``), for a stage to print."""
    lines = [f"{r.path}: {r.issue}" for r in kept.itertuples() if r.action == "reject"]
    if "duplicate_of" in kept:
        for r in kept[kept["duplicate_of"] != ""].itertuples():
            what = "exact" if r.duplicate_distance == 0 else "near"
            rule = "leakage across splits" if r.leakage else "duplicate within a split"
            lines.append(f"{r.path}: {what} duplicate of {r.duplicate_of} ({rule})")
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])
