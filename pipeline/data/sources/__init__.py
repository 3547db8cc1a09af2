"""Resolve ``data.source`` (a folder, an archive, or an http(s) URL of one) to a folder.

A user's folder is used where it is: nothing here writes to it. An archive is
extracted (pipeline.data.sources.archives), a URL downloaded first (pipeline.data.sources.download),
both once, into ``data.cache``, each checked whole before it is used. prepare records
the folder it resolved to in ``data/source.json``; the stages after it find the images
through :func:`data_root`.

Its modules: ``urls`` (an http(s) source: its key and credentials, never shown),
``download`` (once into the cache, whole or nothing), ``archives`` (safe extraction of
untrusted zip and tar files), ``names`` (file and member names the pipeline cannot
carry), ``trees`` (what a local source may be and where its links may lead), ``layout``
(the class folders under wrapping folders, the split folders of a pre-split set) and
``fingerprint`` (a digest of the source that changes when its content does).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipeline.core import paths
from pipeline.core.hashing import file_digest
from pipeline.core.net import redacted
from pipeline.core.params import DataParams, DownloadParams
from pipeline.data.source_errors import SourceError
from pipeline.data.sources.archives import TAR_SUFFIXES, ZIP_SUFFIXES, archive_type, extract_archive
from pipeline.data.sources.download import download
from pipeline.data.sources.layout import class_root, find_presplit, select_root
from pipeline.data.sources.trees import local_source
from pipeline.data.sources.urls import check_scheme, is_url

Kind = Literal["folder", "archive", "url"]


@dataclass(frozen=True)
class SourceInfo:
    """Where the class folders are, and what they came from."""

    root: Path  # the folder holding the class folders (or the split folders)
    kind: Kind
    sha256: str | None  # of the archive's bytes; None for a folder
    presplit: dict[str, Path] | None  # {"train": ..., "val": ..., "test": ...} if found
    archive: Path | None = None  # the local archive file (downloaded or given)
    url: str | None = None  # as given: print or store only net.redacted(url)
    # The real folder of the whole source (the folder given, its link followed, or the
    # extraction): data.root must resolve inside it (trees.py).
    tree: Path | None = None


def resolve_source(
    spec: str,
    cache_dir: Path,
    *,
    sha256: str | None = None,
    max_bytes: int,
    max_files: int,
    allow_download: bool = True,
    download_settings: DownloadParams | None = None,
) -> SourceInfo:
    """Turn ``data.source`` into a folder of class folders, downloading/extracting if needed.

    ``sha256`` pins the archive's content (URL or archive path); ``max_bytes`` caps
    both the download and the extracted total, ``max_files`` the archive's entries.
    Calling this again with the same arguments does no network request and no
    extraction: both are reused from ``cache_dir``. ``allow_download=False`` makes
    a URL that is not in the cache an error instead of a download (stages after
    prepare re-resolve this way: they never touch the network). ``download_settings``
    (``data.download``): the deadline, per-read timeout and retries of a download.
    """
    cache_dir = Path(cache_dir)
    pin = _normalise_pin(sha256)
    if is_url(spec):
        timing = download_settings.model_dump() if download_settings else {}
        archive, digest = download(spec, cache_dir / "downloads", sha256=pin,
                                   max_bytes=max_bytes, allow_download=allow_download,
                                   extracted=cache_dir / "extracted", **timing)
        top = extract_archive(archive, cache_dir / "extracted", digest,
                              max_bytes=max_bytes, max_files=max_files)
        root = class_root(top)
        return SourceInfo(root, "url", digest, find_presplit(root), archive=archive, url=spec,
                          tree=Path(os.path.realpath(top)))
    check_scheme(spec)

    path = local_source(spec)  # exists, not a special file, not a system tree
    if path.is_dir():
        if pin is not None:
            raise SourceError(
                f"data.source: {spec!r} is a folder; a pinned sha256 applies to archives only"
            )
        return SourceInfo(path, "folder", None, find_presplit(path),
                          tree=Path(os.path.realpath(path)))
    if archive_type(path) is None:
        raise SourceError(
            f"data.source: {spec!r} is a file but not a zip or tar archive "
            f"({', '.join(ZIP_SUFFIXES + TAR_SUFFIXES)})"
        )
    digest = file_digest(path)
    if pin is not None and digest != pin:
        raise SourceError(
            f"data.source: archive {spec!r} has sha256 {digest}, but {pin} is pinned; "
            "the archive is not used"
        )
    top = extract_archive(path, cache_dir / "extracted", digest,
                          max_bytes=max_bytes, max_files=max_files)
    root = class_root(top)
    return SourceInfo(root, "archive", digest, find_presplit(root), archive=path,
                      tree=Path(os.path.realpath(top)))


def _normalise_pin(sha256: str | None) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    pin = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", pin):
        raise SourceError(f"data.sha256: {sha256!r} is not a sha256 (64 hex digits)")
    return pin


def record(info: SourceInfo, spec: str, presplit: bool) -> dict:
    """What prepare writes to ``data/source.json``: the folder the manifest's paths are
    relative to (relative to the project when inside it), and where it came from (a URL
    without its password)."""
    return {
        "source": redacted(spec),
        "kind": info.kind,
        "sha256": info.sha256,
        "root": _portable(info.root),
        "presplit": presplit,
    }


def _portable(path: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return str(absolute)


def resolve(data: DataParams, allow_download: bool = True) -> SourceInfo:
    """:func:`resolve_source` with the ``data`` section's settings, ``data.root`` applied."""
    info = resolve_source(data.source, Path(data.cache), sha256=data.sha256,
                          max_bytes=data.max_bytes, max_files=data.max_files,
                          allow_download=allow_download, download_settings=data.download)
    if data.root is None:
        return info
    root = select_root(info.root, data.root, info.tree)
    return dataclasses.replace(info, root=root, presplit=find_presplit(root))


def recorded_root(data: DataParams, record_file: str | Path = paths.SOURCE) -> Path:
    """The folder prepare recorded in ``data/source.json`` for the current ``data.source``:
    read, never resolved again (no archive hashed, no cache looked up). A SourceError
    naming the record when it is missing or unreadable, records another source, or names a
    folder that is gone."""
    path = Path(record_file)
    rerun = "run `dvc repro prepare`"
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SourceError(f"{path} not found: {rerun} (it records where data.source "
                          "resolved to)") from None
    except (OSError, ValueError) as err:
        raise SourceError(f"{path}: cannot read it ({err}); {rerun}") from None
    if not isinstance(saved, dict) or not saved.get("root"):
        raise SourceError(f"{path}: no `root` recorded; {rerun}")
    if saved.get("source") != redacted(data.source):
        raise SourceError(f"{path} is for data.source {saved.get('source')!r}, params.yaml's "
                          f"is {redacted(data.source)!r}; {rerun}")
    root = Path(str(saved["root"]))
    if not root.is_dir():
        raise SourceError(f"{path}: the images' folder {root} is gone; run "
                          "`dvc repro --force prepare`")
    return root


def data_root(data: DataParams, record_file: str | Path = paths.SOURCE) -> Path:
    """The folder the manifest's paths are relative to, for every stage after prepare.

    prepare records it in ``data/source.json``; that record is used when it is for
    the current ``data.source`` and its folder exists (:func:`recorded_root`). Otherwise
    the source is resolved again, never over the network: a folder is used where it is,
    an archive is checked and (re-)extracted into ``data.cache``, and a URL must
    already be in the download cache.
    """
    try:
        return recorded_root(data, record_file)
    except SourceError:
        return resolve(data, allow_download=False).root
