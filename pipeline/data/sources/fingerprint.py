"""A fingerprint of ``data.source`` that changes when its content does, made without opening
anything but regular files.

DVC hashing the data folder as a dependency of ``prepare`` opened every entry in it:
a FIFO hung ``dvc repro`` for ever, a socket failed with "No such device or
address", a Latin-1 name failed with "surrogates not allowed", and a URL was
requested on every ``dvc status``. The ``source`` stage writes this fingerprint
instead, and ``prepare`` depends on it:

* a folder: every entry by relative path (its bytes, so any name works), regular
  files by size and sha256. The sha256 is cached by (path, size, mtime_ns) in
  ``data.cache/fingerprints/``, so a run with nothing changed costs a stat of each
  entry. Special files (FIFO, socket, device) are listed, never opened;
* a local archive: its sha256 (cached the same way);
* a URL: its pinned sha256, else the sha256 recorded with its cached download
  (downloaded here first if it is not cached), so ``dvc status`` sends no request.

The sha256 of all that is what DVC compares: mtimes are left out, so a file touched
but not changed does not re-run ``prepare``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import urllib.parse
from pathlib import Path

from pipeline.core.hashing import file_digest
from pipeline.core.io import write_json
from pipeline.core.params import DataParams
from pipeline.data.local import check_local
from pipeline.data.sources.download import download, recorded
from pipeline.data.sources.names import SPECIAL, shown

CACHE = "fingerprints"  # under data.cache: one JSON of {path: [size, mtime_ns, sha256]} per root


def fingerprint(data: DataParams) -> dict:
    """What ``data/source_fingerprint.json`` holds for the ``data`` section's source."""
    spec, cache = data.source, Path(data.cache)
    if urllib.parse.urlsplit(spec).scheme.lower() in ("http", "https"):
        return {"source": spec, "kind": "url", "sha256": _url_digest(data)}
    # Missing or special: refused here, not recorded for prepare to refuse (DVC would
    # update dvc.lock, then remove prepare's outputs before prepare ran).
    check_local(spec)
    path = Path(spec).expanduser()
    if path.is_dir():
        return {"source": spec, "kind": "folder", **folder_fingerprint(path, cache / CACHE)}
    hashes = _HashCache(cache / CACHE, path)
    digest = hashes.digest(path, "", path.stat())
    hashes.save()
    return {"source": spec, "kind": "archive", "sha256": digest}


def _url_digest(data: DataParams) -> str:
    if data.sha256:
        return data.sha256.lower()
    downloads = Path(data.cache) / "downloads"
    record = recorded(data.source, downloads)
    if record is not None:
        return str(record["sha256"])
    _, digest = download(data.source, downloads, sha256=None, max_bytes=data.max_bytes,
                         extracted=Path(data.cache) / "extracted", **data.download.model_dump())
    return digest


def folder_fingerprint(root: Path, cache: Path) -> dict:
    """{"files", "bytes", "special": [shown names], "sha256"} of the tree under ``root``."""
    hashes = _HashCache(cache, root)
    lines: list[bytes] = []
    special: list[str] = []
    files = total = 0
    for rel, path in _walk(root):
        try:
            info = os.stat(path)  # follows a link to what it names; never opens it
        except OSError:
            lines.append(b"broken link\t" + rel + b"\n")
            continue
        kind = SPECIAL.get(stat.S_IFMT(info.st_mode))
        if kind is not None:
            special.append(f"{shown(rel)} ({kind})")
            lines.append(f"{kind}\t".encode() + rel + b"\n")
        elif stat.S_ISDIR(info.st_mode):  # a link to a folder: the scan does not follow it
            lines.append(b"folder link\t" + rel + b"\n")
        elif stat.S_ISREG(info.st_mode):
            digest = hashes.digest(path, os.fsdecode(rel), info)
            files, total = files + 1, total + info.st_size
            lines.append(f"{info.st_size}\t{digest}\t".encode() + rel + b"\n")
    hashes.save()
    overall = hashlib.sha256(b"".join(sorted(lines))).hexdigest()
    return {"files": files, "bytes": total, "special": special, "sha256": overall}


def _walk(root: Path):
    """(relative path as bytes, path) of every entry under ``root`` but its folders,
    without following links to folders (as the scan does not)."""
    pending = [os.fsencode(root)]
    base = len(pending[0]) + 1
    while pending:
        with os.scandir(pending.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                else:
                    yield entry.path[base:], entry.path


class _HashCache:
    """sha256 of files by (relative path, size, mtime_ns): unchanged files are not read."""

    def __init__(self, folder: Path, root: Path) -> None:
        key = hashlib.sha256(os.fsencode(os.path.abspath(root))).hexdigest()[:16]
        self.path = folder / f"{key}.json"
        try:
            self.old = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.old = {}
        self.new: dict[str, list] = {}

    def digest(self, path: str | bytes | Path, rel: str, info: os.stat_result) -> str:
        known = self.old.get(rel)
        if isinstance(known, list) and known[:2] == [info.st_size, info.st_mtime_ns]:
            digest = str(known[2])
        else:
            digest = file_digest(os.fsdecode(path))
        self.new[rel] = [info.st_size, info.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        if self.new != self.old:  # json escapes the surrogates of a non-UTF-8 name
            write_json(self.path, self.new)
