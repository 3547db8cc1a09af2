"""Resolve ``data.source`` (a folder, an archive, or an http(s) URL of one) to a folder.

Archives are data from elsewhere, so they are extracted as untrusted input:

* every member name is checked before anything is written: no absolute paths
  (``/x``, ``C:x``), no ``..`` components, no NUL bytes;
* **no links at all** (symbolic or hard, pointing inside or out), no device
  files, FIFOs or sockets: a folder of images needs none, and refusing them all
  is simpler to get right than judging where each one points. The message says
  how to repack (``tar --dereference``);
* the number of entries and the total size are capped from the headers before
  extraction, and the bytes actually written are counted again while writing,
  because a header can lie;
* extraction goes to a temporary folder beside the target that is renamed into
  place only when complete, with a marker file written last (beside the
  extracted tree, not in it), so an interrupted run is redone rather than
  half-reused. Members are streamed by this module,
  never by ``extractall``, so no owner, permission or timestamp comes from the
  archive.

A URL is downloaded once into ``cache_dir/downloads/<url hash>/`` (temporary
file, then rename), and its sha256 checked against the pinned one if given;
a file that does not match is never stored or used. Archives are extracted into
``cache_dir/extracted/<sha256 prefix>/files/``, keyed by content, so the same bytes
from two URLs or paths are extracted once.

A user's folder is used where it is: nothing here writes to it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, Literal

from pipeline import paths
from pipeline.io import atomic_path
from pipeline.manifest import DataSourceError

if TYPE_CHECKING:
    from pipeline.config import Config

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
DOWNLOAD_TIMEOUT = 15  # seconds without a byte before an offline machine gives up
MARKER = "extracted.json"  # written last into a complete extraction, beside FILES
FILES = "files"  # the archive's tree, so the marker is not part of the data
CHUNK = 1 << 20
# Split folder names a pre-split data set may use, in canonical order.
SPLIT_FOLDERS: dict[str, tuple[str, ...]] = {
    "train": ("train",),
    "val": ("val", "validation"),
    "test": ("test",),
}
# Top-level droppings of archivers that are not part of the data.
_JUNK = frozenset({"__MACOSX", "Thumbs.db", "desktop.ini"})


class SourceError(DataSourceError):
    """``data.source`` cannot be used; the message names the path, member or URL and why.

    A DataSourceError, so the stage runner prints it as one line and exits 2.
    """


Kind = Literal["folder", "archive", "url"]


@dataclass(frozen=True)
class SourceInfo:
    """Where the class folders are, and what they came from."""

    root: Path  # the folder holding the class folders (or the split folders)
    kind: Kind
    sha256: str | None  # of the archive's bytes; None for a folder
    presplit: dict[str, Path] | None  # {"train": ..., "val": ..., "test": ...} if found
    archive: Path | None = None  # the local archive file (downloaded or given)
    url: str | None = None


# --------------------------------------------------------------------------- entry point


def resolve_source(
    spec: str,
    cache_dir: Path,
    *,
    sha256: str | None = None,
    max_bytes: int,
    max_files: int,
    allow_download: bool = True,
) -> SourceInfo:
    """Turn ``data.source`` into a folder of class folders, downloading/extracting if needed.

    ``sha256`` pins the archive's content (URL or archive path); ``max_bytes`` caps
    both the download and the extracted total, ``max_files`` the archive's entries.
    Calling this again with the same arguments does no network request and no
    extraction: both are reused from ``cache_dir``. ``allow_download=False`` makes
    a URL that is not in the cache an error instead of a download (stages after
    prepare re-resolve this way: they never touch the network).
    """
    cache_dir = Path(cache_dir)
    pin = _normalise_pin(sha256)
    scheme = urllib.parse.urlsplit(spec).scheme.lower()
    if scheme in ("http", "https"):
        archive, digest = download(spec, cache_dir / "downloads", sha256=pin,
                                   max_bytes=max_bytes, allow_download=allow_download)
        top = extract_archive(archive, cache_dir / "extracted", digest,
                              max_bytes=max_bytes, max_files=max_files)
        root = class_root(top)
        return SourceInfo(root, "url", digest, find_presplit(root), archive=archive, url=spec)
    if "://" in spec:
        raise SourceError(f"data.source: {spec!r}: only http(s) URLs are supported")

    path = Path(spec).expanduser()
    if not path.exists():
        hint = " (a broken symbolic link)" if path.is_symlink() else ""
        raise SourceError(f"data.source: {spec!r} does not exist{hint}")
    if path.is_dir():
        if pin is not None:
            raise SourceError(
                f"data.source: {spec!r} is a folder; a pinned sha256 applies to archives only"
            )
        return SourceInfo(path, "folder", None, find_presplit(path))
    if _archive_type(path) is None:
        raise SourceError(
            f"data.source: {spec!r} is a file but not a zip or tar archive "
            f"({', '.join(ZIP_SUFFIXES + TAR_SUFFIXES)})"
        )
    digest = _file_sha256(path)
    if pin is not None and digest != pin:
        raise SourceError(
            f"data.source: archive {spec!r} has sha256 {digest}, but {pin} is pinned; "
            "the archive is not used"
        )
    top = extract_archive(path, cache_dir / "extracted", digest,
                          max_bytes=max_bytes, max_files=max_files)
    root = class_root(top)
    return SourceInfo(root, "archive", digest, find_presplit(root), archive=path)


def _normalise_pin(sha256: str | None) -> str | None:
    if sha256 is None or sha256 == "":
        return None
    pin = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", pin):
        raise SourceError(f"data.sha256: {sha256!r} is not a sha256 (64 hex digits)")
    return pin


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- download


def download(
    url: str, folder: Path, *, sha256: str | None, max_bytes: int, allow_download: bool = True
) -> tuple[Path, str]:
    """(cached copy of ``url``, its sha256), downloaded (atomically, size-capped) if needed.

    The cache key is the URL, so a changed pin does not re-download by itself; a
    cached file that does not match the pin is downloaded again, and if the fresh
    copy does not match either it is discarded with an error. ``allow_download=False``:
    SourceError instead of a download.
    """
    target_dir = folder / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    target = target_dir / (_safe_file_name(name) or "archive")
    if target.is_file():
        cached = _file_sha256(target)  # re-hashed: a cache can be corrupted or edited
        if sha256 is None or cached == sha256:
            return target, cached
    if not allow_download:
        raise SourceError(
            f"data.source: {url} is not in the download cache ({target_dir}); run the "
            "prepare stage first (`dvc repro prepare`), which downloads it"
        )

    target_dir.mkdir(parents=True, exist_ok=True)
    (target_dir / "url.txt").write_text(url + "\n", encoding="utf-8")  # for humans
    with atomic_path(target, suffix=".part") as tmp:
        digest = _fetch(url, tmp, max_bytes)
        if sha256 is not None and digest != sha256:
            raise SourceError(
                f"data.source: download of {url} has sha256 {digest}, but {sha256} is "
                "pinned; the file is discarded (check the URL, or update data.sha256 if "
                "the archive was intentionally replaced)"
            )
    return target, digest


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")


def _fetch(url: str, dest: Path, max_bytes: int) -> str:
    """Stream ``url`` into ``dest``; return its sha256. Refuses more than ``max_bytes``."""
    digest = hashlib.sha256()
    written = 0
    request = urllib.request.Request(url, headers={"User-Agent": "transfer-pipeline"})
    try:
        with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as response, \
                open(dest, "wb") as out:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise SourceError(
                    f"data.source: {url} is {int(declared):,} bytes, more than the "
                    f"{max_bytes:,} allowed (max_bytes)"
                )
            for chunk in iter(lambda: response.read(CHUNK), b""):
                written += len(chunk)
                if written > max_bytes:
                    raise SourceError(
                        f"data.source: {url} sent more than the {max_bytes:,} bytes "
                        "allowed (max_bytes); download abandoned"
                    )
                digest.update(chunk)
                out.write(chunk)
    except urllib.error.HTTPError as err:
        raise SourceError(f"data.source: download of {url} failed: HTTP {err.code} "
                          f"{err.reason}") from None
    except OSError as err:  # URLError, timeouts, refused connections
        reason = getattr(err, "reason", err)
        raise SourceError(
            f"data.source: cannot download {url} ({reason}). On an offline machine, "
            "download the archive elsewhere and set data.source to its local path."
        ) from None
    return digest.hexdigest()


# --------------------------------------------------------------------------- archives


def _archive_type(path: Path) -> Literal["zip", "tar"] | None:
    """zip or tar by name, else by content (a URL need not end in .zip)."""
    name = path.name.lower()
    if name.endswith(ZIP_SUFFIXES):
        return "zip"
    if name.endswith(TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except (OSError, tarfile.TarError):
        pass
    return None


@dataclass(frozen=True)
class _Member:
    name: str  # as stored, for messages
    rel: PurePosixPath  # checked, normalised relative path
    is_dir: bool
    size: int  # declared by the header


def _check_name(archive: Path, name: str, is_dir: bool) -> PurePosixPath | None:
    """The member's relative path, or SourceError naming the member and the rule.

    None for the archive's own root folder (``./``, as ``tar -C dir .`` writes it).
    """

    def reject(rule: str) -> SourceError:
        return SourceError(f"archive {archive.name}: member {name!r} rejected: {rule}")

    if "\x00" in name:
        raise reject("NUL byte in the name")
    posix = name.replace("\\", "/")  # Windows zips; a backslash is never a file name char here
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix):
        raise reject("absolute path")
    parts = [p for p in posix.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise reject("'..' path component (would write outside the extraction folder)")
    if not parts:
        if is_dir:
            return None
        raise reject("empty path")
    return PurePosixPath(*parts)


def _zip_members(archive: Path, zf: zipfile.ZipFile, max_files: int) -> list[_Member]:
    members = []
    for info in zf.infolist():
        # The high 16 bits are a Unix st_mode only for zips made on Unix (create_system 3);
        # many writers leave the file-type bits at 0, which means a plain file.
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        rel = _check_name(archive, info.filename, info.is_dir())
        reject = f"archive {archive.name}: member {info.filename!r} rejected: "
        if stat.S_ISLNK(mode):
            raise SourceError(reject + "symbolic link (links are not extracted; repack the "
                              "archive with the files themselves)")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise SourceError(reject + "device, FIFO or socket file")
        if rel is not None:
            members.append(_Member(info.filename, rel, info.is_dir(), info.file_size))
        if len(members) > max_files:
            raise _too_many(archive, max_files)
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile, max_files: int) -> list[_Member]:
    members = []
    for info in tf:  # iterating reads headers one by one: stops early on a flood of entries
        rel = _check_name(archive, info.name, info.isdir())
        reject = f"archive {archive.name}: member {info.name!r} rejected: "
        if info.issym():
            raise SourceError(reject + f"symbolic link to {info.linkname!r} (links are not "
                              "extracted; repack with `tar --dereference`)")
        if info.islnk():
            raise SourceError(reject + f"hard link to {info.linkname!r} (links are not "
                              "extracted; repack with `tar --hard-dereference`)")
        if info.ischr() or info.isblk() or info.isfifo():
            raise SourceError(reject + "device or FIFO file")
        if not (info.isreg() or info.isdir()):
            raise SourceError(reject + f"unsupported entry type {info.type!r}")
        if rel is not None:
            members.append(_Member(info.name, rel, info.isdir(), info.size if info.isreg() else 0))
        if len(members) > max_files:
            raise _too_many(archive, max_files)
    return members


def _too_many(archive: Path, max_files: int) -> SourceError:
    return SourceError(
        f"archive {archive.name}: more than {max_files:,} entries (max_files); not extracted"
    )


def _check_members(archive: Path, members: list[_Member], max_bytes: int) -> None:
    total = sum(m.size for m in members)
    if total > max_bytes:
        raise SourceError(
            f"archive {archive.name}: {total:,} bytes once extracted, more than the "
            f"{max_bytes:,} allowed (max_bytes); not extracted"
        )
    seen: dict[PurePosixPath, bool] = {}
    for m in members:
        if m.rel in seen and not (m.is_dir and seen[m.rel]):
            raise SourceError(
                f"archive {archive.name}: member {m.name!r} rejected: duplicate path"
            )
        seen[m.rel] = m.is_dir
    for rel in seen:  # a file used as a folder by another member
        for parent in rel.parents:
            if seen.get(parent) is False:
                raise SourceError(
                    f"archive {archive.name}: member {str(rel)!r} rejected: "
                    f"its folder {str(parent)!r} is a file in the archive"
                )


class _Budget:
    """Bytes and files left to write; the while-writing half of the caps."""

    def __init__(self, archive: Path, max_bytes: int, max_files: int) -> None:
        self.archive, self.bytes_left, self.files_left = archive, max_bytes, max_files
        self.max_bytes, self.max_files = max_bytes, max_files

    def take_file(self) -> None:
        self.files_left -= 1
        if self.files_left < 0:
            raise _too_many(self.archive, self.max_files)

    def copy(self, src: BinaryIO, dst: BinaryIO, name: str) -> int:
        written = 0
        for chunk in iter(lambda: src.read(CHUNK), b""):
            self.bytes_left -= len(chunk)
            if self.bytes_left < 0:
                raise SourceError(
                    f"archive {self.archive.name}: member {name!r} rejected: extraction "
                    f"exceeded {self.max_bytes:,} bytes (max_bytes; the header understated "
                    "the size)"
                )
            dst.write(chunk)
            written += len(chunk)
        return written


def _write_member(dest: Path, member: _Member, src: BinaryIO, budget: _Budget) -> None:
    target = dest.joinpath(*member.rel.parts)
    # Defence in depth: names are checked and no links are ever created, so this holds.
    if not target.resolve().is_relative_to(dest.resolve()):
        raise SourceError(f"archive {budget.archive.name}: member {member.name!r} rejected: "
                          "resolves outside the extraction folder")
    budget.take_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never follow or overwrite anything already there.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as out:
        budget.copy(src, out, member.name)


def extract_archive(
    archive: Path, folder: Path, sha256: str, *, max_bytes: int, max_files: int
) -> Path:
    """Extract ``archive`` safely; return ``folder/<sha256[:16]>/files``, reused once complete."""
    target = folder / sha256[:16]
    if (target / MARKER).is_file():
        return target / FILES
    kind = _archive_type(archive)
    if kind is None:
        raise SourceError(f"data.source: {archive.name} is not a zip or tar archive")
    folder.mkdir(parents=True, exist_ok=True)
    if target.exists():  # an incomplete extraction (no marker) from an older run: redo it
        shutil.rmtree(target)
    budget = _Budget(archive, max_bytes, max_files)
    with _temporary_dir(folder, target.name) as tmp:
        tmp.chmod(0o755)  # mkdtemp's 0o700 would stay on the renamed folder
        tree = tmp / FILES
        tree.mkdir()
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    members = _zip_members(archive, zf, max_files)
                    _check_members(archive, members, max_bytes)
                    for m in members:
                        if m.is_dir:
                            tree.joinpath(*m.rel.parts).mkdir(parents=True, exist_ok=True)
                        else:
                            with zf.open(m.name) as src:
                                _write_member(tree, m, src, budget)
            else:
                with tarfile.open(archive, "r:*") as tf:
                    members = _tar_members(archive, tf, max_files)
                    _check_members(archive, members, max_bytes)
                    by_name = {m.name: m for m in members}
                    for info in tf.getmembers():  # headers are cached: no second scan
                        m = by_name.get(info.name)
                        if m is None:  # the root folder entry
                            continue
                        if m.is_dir:
                            tree.joinpath(*m.rel.parts).mkdir(parents=True, exist_ok=True)
                        else:
                            src = tf.extractfile(info)
                            assert src is not None  # regular file, checked above
                            with src:
                                _write_member(tree, m, src, budget)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error) as err:
            raise SourceError(f"archive {archive.name} is corrupt or truncated: {err}") from None
        except (RuntimeError, NotImplementedError) as err:  # encrypted, unknown compression
            raise SourceError(f"archive {archive.name} cannot be read: {err}") from None
        files = budget.max_files - budget.files_left
        written = budget.max_bytes - budget.bytes_left
        (tmp / MARKER).write_text(
            json.dumps({"sha256": sha256, "files": files, "bytes": written}) + "\n",
            encoding="utf-8",
        )
        try:
            os.replace(tmp, target)
        except OSError:
            if not (target / MARKER).is_file():  # not a concurrent run that finished first
                raise
    return target / FILES


@contextmanager
def _temporary_dir(folder: Path, name: str) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --------------------------------------------------------------------------- layout


def _entries(folder: Path) -> tuple[list[Path], list[Path]]:
    """(folders, files) directly in ``folder``, without hidden and archiver junk."""
    dirs, files = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in _JUNK:
            continue
        (dirs if entry.is_dir() else files).append(entry)
    return dirs, files


def class_root(top: Path) -> Path:
    """The folder holding the class folders: descend through lone wrapping folders.

    ``flower_photos.tgz`` holds ``flower_photos/<class>/...`` (plus a LICENSE.txt);
    a zip made on a Mac adds ``__MACOSX/``. A lone folder is descended into only
    if it has sub-folders itself, so a single-class data set (``wrap/cat/*.jpg``)
    stops at ``wrap`` and is reported as one class, not mistaken for images
    outside any class folder. Loose files beside the lone folder (a README) do
    not stop the descent.
    """
    root = top
    for _ in range(16):  # a bound, not a limit anyone meets
        dirs, _files = _entries(root)
        if len(dirs) != 1 or not _entries(dirs[0])[0]:
            return root
        root = dirs[0]
    return root


def find_presplit(root: Path) -> dict[str, Path] | None:
    """The split folders if ``root`` has ``train/``, ``val/`` (or ``validation/``) and ``test/``.

    Names match case-insensitively (``Train/`` from Windows). Having both ``val/``
    and ``validation/`` is ambiguous and an error; a partial set (``train/`` and
    ``test/`` only) is not a pre-split data set and gives None (see
    :func:`split_folders`).
    """
    found = split_folders(root)
    return found if len(found) == len(SPLIT_FOLDERS) else None


def split_folders(root: Path) -> dict[str, Path]:
    """The split-named folders directly in ``root``, ``{split: folder}``, even a partial set.

    Canonical split order (train, val, test); an empty dict when there are none.
    """
    if not root.is_dir():
        return {}
    dirs = {d.name.lower(): d for d in _entries(root)[0]}
    found: dict[str, Path] = {}
    for split, names in SPLIT_FOLDERS.items():
        present = [dirs[n] for n in names if n in dirs]
        if len(present) > 1:
            raise SourceError(
                f"data.source: {root} has both {' and '.join(p.name + '/' for p in present)}; "
                f"keep one as the {split} split"
            )
        if present:
            found[split] = present[0]
    return found


# --------------------------------------------------------------------------- later stages


def record(info: SourceInfo, spec: str, presplit: bool) -> dict:
    """What prepare writes to ``data/source.json``: the folder the manifest's paths are
    relative to (relative to the project when inside it), and where it came from."""
    return {
        "source": spec,
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


def data_root(cfg: Config, record_file: str | Path = paths.SOURCE) -> Path:
    """The folder the manifest's paths are relative to, for every stage after prepare.

    prepare records it in ``data/source.json``; that record is used when it is for
    the current ``data.source`` and its folder exists. Otherwise the source is
    resolved again, never over the network: a folder is used where it is, an
    archive is checked and (re-)extracted into ``data.cache``, and a URL must
    already be in the download cache.
    """
    path = Path(record_file)
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        root = Path(str(saved.get("root", "")))
        if saved.get("source") == cfg.data.source and saved.get("root") and root.is_dir():
            return root
    d = cfg.data
    return resolve_source(d.source, Path(d.cache), sha256=d.sha256, max_bytes=d.max_bytes,
                          max_files=d.max_files, allow_download=False).root


def presplit_folders(info: SourceInfo, mode: str) -> tuple[dict | None, bool]:
    """(split folders to scan, whether they give the split) for ``data.presplit``.

    auto: a complete set of split folders gives the split; a partial one is an error
    rather than being taken for classes. use: a complete set is required. ignore:
    the images of any split folders are pooled and split afresh.
    """
    found = split_folders(info.root)
    if mode == "ignore":
        return found or None, False
    if info.presplit:
        return info.presplit, True
    need = " and ".join("/ or ".join(names) + "/" for names in SPLIT_FOLDERS.values())
    if found:
        have = ", ".join(f"{p.name}/" for p in found.values())
        missing = " and ".join("/ or ".join(SPLIT_FOLDERS[s]) + "/"
                               for s in SPLIT_FOLDERS if s not in found)
        raise SourceError(
            f"data.source: {str(info.root)!r} has the split folder(s) {have} but no "
            f"{missing}: a pre-split data set needs {need}. Add the missing folder, or set "
            "data.presplit: ignore to pool their images and split them afresh"
        )
    if mode == "use":
        raise SourceError(
            f"data.presplit is 'use', but {str(info.root)!r} has no split folders "
            f"(expected {need} holding the class folders)"
        )
    return None, False
