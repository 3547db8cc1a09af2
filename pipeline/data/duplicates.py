"""Exact and near copies: which image each copy copies, and whether across splits.

Exact copies share a sha256; near copies have 64-bit perceptual hashes
(pipeline.data.phash) within a few bits. Rows are ordered train, val, test, then
by path; a row is a copy if an earlier row that is not itself a copy is its
duplicate, so a train image is kept and its copy in test is the one reported.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import pandas as pd

from pipeline.data.splits import SPLITS


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


def mark_copies(frame: pd.DataFrame, near_threshold: int | None,
                usable: pd.Series | None = None) -> pd.DataFrame:
    """``frame`` with the copy columns: ``duplicate_of`` (the kept original, "" if none),
    ``duplicate_distance`` (phash bits, 0 for identical bytes) and ``leakage`` (original
    and copy in different splits).

    Copies are the same bytes (``sha256``) or hashes within ``near_threshold`` bits
    (None: exact only), among the ``usable`` rows (default: all).
    """
    frame = frame.copy()
    frame["duplicate_of"] = ""
    frame["duplicate_distance"] = pd.array([pd.NA] * len(frame), dtype="Int64")
    frame["leakage"] = False
    rows = frame if usable is None else frame[usable]
    split = rows["split"] if "split" in rows else pd.Series("", index=rows.index)
    rank = split.map({s: i for i, s in enumerate(SPLITS)}).fillna(len(SPLITS))
    ordered = rows.assign(_rank=rank).sort_values(["_rank", "path"], kind="stable")
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
        frame.at[label, "duplicate_of"] = frame.at[first, "path"]
        frame.at[label, "duplicate_distance"] = neighbours[label][first]
        frame.at[label, "leakage"] = str(split[label]) != str(split[first])
    return frame


def copy_kind(frame: pd.DataFrame, label: object) -> str:
    """What row ``label`` of a marked ``frame`` is of its original: "exact copy" for the
    same bytes only; otherwise "near copy (distance d)", d in perceptual-hash bits, 0 for
    the same picture in other bytes (a re-encoded or resized thumbnail); "copy" when
    neither the bytes nor the distance are known."""
    sha = frame.at[label, "sha256"] if "sha256" in frame else None
    original = (frame.loc[frame["path"] == frame.at[label, "duplicate_of"], "sha256"]
                if "sha256" in frame else [])
    if _known(sha) and len(original) and str(original.iloc[0]) == str(sha):
        return "exact copy"
    distance = frame.at[label, "duplicate_distance"]
    return f"near copy (distance {int(distance)})" if _known(distance) else "copy"


def _known(value: object) -> bool:
    """Not missing: None, NaN, NA and blank text are (NA first: ``NA == ""`` is NA,
    which has no truth value)."""
    if pd.api.types.is_scalar(value) and pd.isna(value):  # None is a scalar NA too
        return False
    return value != ""
