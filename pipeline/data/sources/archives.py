"""Extract an archive safely: archives are data from elsewhere, so untrusted input.

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
  half-reused. Members are streamed by this module, never by ``extractall``, so
  no owner, permission or timestamp comes from the archive.

Archives are extracted into ``folder/<sha256 prefix>/files/``, keyed by content, so
the same bytes from two URLs or paths are extracted once.
"""

from __future__ import annotations

import errno
import json
import lzma
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Literal

from filelock import FileLock

from pipeline.core.hashing import CHUNK
from pipeline.data.source_errors import SourceError
from pipeline.data.sources.names import not_utf8, shown, too_long

ZIP_SUFFIXES = (".zip",)
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
MARKER = "extracted.json"  # written last into a complete extraction, beside FILES
FILES = "files"  # the archive's tree, so the marker is not part of the data


def archive_type(path: Path) -> Literal["zip", "tar"] | None:
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
        return SourceError(f"archive {archive.name}: member {shown(name)} rejected: {rule}")

    if "\x00" in name:
        raise reject("NUL byte in the name")
    if not_utf8(name):  # a tar written on a Latin-1 system: the manifest could not hold it
        raise reject("the name is not UTF-8 (rename the file and repack the archive)")
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
    long = too_long(parts)
    if long:
        raise reject(long)
    return PurePosixPath(*parts)


def _zip_members(archive: Path, zf: zipfile.ZipFile, max_files: int) -> list[_Member]:
    members = []
    for info in zf.infolist():
        # The high 16 bits are a Unix st_mode only for zips made on Unix (create_system 3);
        # many writers leave the file-type bits at 0, which means a plain file.
        mode = info.external_attr >> 16 if info.create_system == 3 else 0
        rel = _check_name(archive, info.filename, info.is_dir())
        reject = f"archive {archive.name}: member {shown(info.filename)} rejected: "
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
        reject = f"archive {archive.name}: member {shown(info.name)} rejected: "
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

    def copy(self, src: BinaryIO, dst: BinaryIO, name: str) -> None:
        for chunk in iter(lambda: src.read(CHUNK), b""):
            self.bytes_left -= len(chunk)
            if self.bytes_left < 0:
                raise SourceError(
                    f"archive {self.archive.name}: member {name!r} rejected: extraction "
                    f"exceeded {self.max_bytes:,} bytes (max_bytes; the header understated "
                    "the size)"
                )
            dst.write(chunk)


def _write_member(dest: Path, member: _Member, src: BinaryIO, budget: _Budget) -> None:
    target = dest.joinpath(*member.rel.parts)
    # Defence in depth: names are checked and no links are ever created, so this holds.
    if not target.resolve().is_relative_to(dest.resolve()):
        raise SourceError(f"archive {budget.archive.name}: member {member.name!r} rejected: "
                          "resolves outside the extraction folder")
    budget.take_file()
    target.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: never follow or overwrite anything already there.
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as err:
        if err.errno != errno.ENAMETOOLONG:  # a file system with a shorter NAME_MAX
            raise
        raise SourceError(f"archive {budget.archive.name}: member {shown(member.name)} "
                          "rejected: its name is too long for this file system") from None
    with os.fdopen(fd, "wb") as out:
        budget.copy(src, out, member.name)


def extract_archive(
    archive: Path, folder: Path, sha256: str, *, max_bytes: int, max_files: int
) -> Path:
    """Extract ``archive`` safely; return ``folder/<sha256[:16]>/files``, reused once complete."""
    target = folder / sha256[:16]
    if (target / MARKER).is_file():
        return target / FILES
    kind = archive_type(archive)
    if kind is None:
        raise SourceError(f"data.source: {archive.name} is not a zip or tar archive")
    folder.mkdir(parents=True, exist_ok=True)
    # Experiments of a queue (`dvc queue start --jobs N`) share this cache: one extracts,
    # the others wait and reuse its result.
    locks = folder.with_name(f"{folder.name}.locks")  # beside: folder holds extractions only
    locks.mkdir(exist_ok=True)
    with FileLock(locks / f"{target.name}.lock"):
        if (target / MARKER).is_file():
            return target / FILES
        if target.exists():  # an incomplete extraction (no marker) from a killed run: redo it
            shutil.rmtree(target)
        _extract(archive, kind, target, sha256, max_bytes, max_files)
    return target / FILES


def discard_extraction(folder: Path, sha256: str) -> None:
    """Remove the extraction of the archive with this sha256, if any (its archive failed)."""
    shutil.rmtree(folder / sha256[:16], ignore_errors=True)


def verify_archive(archive: Path, max_bytes: int) -> None:
    """SourceError unless ``archive`` is whole, by its own checks; reads it once in full.

    A download cut short can still open: a ``.tar`` cut at a member boundary lists
    fewer members without complaint. So: a zip needs its central directory (at the
    very end) and every member's CRC; a tar needs the zero block that ends the
    archive after its last member, and a compressed tar its compressor's own end
    (gzip's CRC and length, bz2's and xz's checks), read to the last byte. At most
    ``max_bytes`` are decompressed (a bomb is refused, not inflated).
    """
    kind = archive_type(archive)
    if kind is None:
        raise SourceError(f"data.source: {archive.name} is not a zip or tar archive")
    with _read_errors(archive):
        if kind == "zip":
            with zipfile.ZipFile(archive) as zf:  # needs the central directory
                infos = zf.infolist()
                if sum(info.file_size for info in infos) > max_bytes:
                    raise _too_big(archive, max_bytes)
                for info in infos:
                    if info.flag_bits & 0x1:  # zipfile's own message shows the ZipInfo's repr
                        raise SourceError(f"archive {archive.name}: member "
                                          f"{shown(info.filename)} rejected: encrypted (repack "
                                          "the archive without a password)")
                    # zipfile reads a member up to its declared size, no further, and checks
                    # its CRC there: the declared total bounds what is inflated.
                    with zf.open(info) as src:
                        shutil.copyfileobj(src, _Discard())
        else:
            with tarfile.open(archive, "r:*") as tf:
                declared = 0
                for info in tf:  # every header; tarfile stops quietly where the data ends
                    declared += info.size
                    if declared > max_bytes:  # the seek below would inflate it all
                        raise _too_big(archive, max_bytes)
                stream = tf.fileobj
                stream.seek(tf.offset)
                end = stream.read(tarfile.BLOCKSIZE)
                # To the last byte, so gzip, bz2 and xz check their CRC and length.
                _Budget(archive, max_bytes, 1).copy(stream, _Discard(), "(the end)")
            if len(end) < tarfile.BLOCKSIZE or end.strip(b"\0"):
                raise SourceError(
                    f"archive {archive.name} is truncated: no end-of-archive block after "
                    f"its last whole member (byte {tf.offset:,} of {archive.stat().st_size:,})"
                )


def _too_big(archive: Path, max_bytes: int) -> SourceError:
    return SourceError(
        f"archive {archive.name}: more than {max_bytes:,} bytes once extracted (max_bytes); "
        "not used"
    )


class _Discard:
    def write(self, data: bytes) -> int:
        return len(data)


@contextmanager
def _read_errors(archive: Path) -> Iterator[None]:
    """The readers' many exceptions for a damaged archive, as one SourceError naming it."""
    try:
        yield
    except UnicodeDecodeError as err:  # zipfile: a name flagged UTF-8 that is not
        raise SourceError(f"archive {archive.name}: member {shown(err.object)} rejected: "
                          "the name is flagged UTF-8 but is not") from None
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, lzma.LZMAError,
            OSError) as err:
        # gzip's BadGzipFile and bz2's "Invalid data stream" are OSErrors without an errno;
        # one with an errno is the system's (a full disk while writing), not the archive's.
        if isinstance(err, OSError) and err.errno is not None:
            raise
        raise SourceError(f"archive {archive.name} is corrupt or truncated: {err}") from None
    except (RuntimeError, NotImplementedError) as err:  # an unknown compression method
        raise SourceError(f"archive {archive.name} cannot be read: {err}") from None


def _extract(archive: Path, kind: str, target: Path, sha256: str, max_bytes: int,
             max_files: int) -> None:
    folder = target.parent
    budget = _Budget(archive, max_bytes, max_files)
    with _temporary_dir(folder, target.name) as tmp:
        tmp.chmod(0o755)  # mkdtemp's 0o700 would stay on the renamed folder
        tree = tmp / FILES
        tree.mkdir()
        with _read_errors(archive):
            if kind == "zip":
                with zipfile.ZipFile(archive) as zf:
                    members = _zip_members(archive, zf, max_files)
                    _check_members(archive, members, max_bytes)
                    # Whole, before anything is written (a cut-short tar extracts "fine").
                    verify_archive(archive, max_bytes)
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
                    verify_archive(archive, max_bytes)
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
        files = budget.max_files - budget.files_left
        written = budget.max_bytes - budget.bytes_left
        (tmp / MARKER).write_text(
            json.dumps({"sha256": sha256, "files": files, "bytes": written}) + "\n",
            encoding="utf-8",
        )
        os.replace(tmp, target)


@contextmanager
def _temporary_dir(folder: Path, name: str) -> Iterator[Path]:
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=folder))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
