"""What a local ``data.source`` may be, and where its links may lead.

The rule (docs/data-sources.md, "Links and system trees"): the source is the tree
under the real path of ``data.source``, and what the pipeline reads stays in it.

* ``data.source`` is a folder or an archive file. A FIFO, a socket or a device is
  refused before it is opened (opening a FIFO waits for a writer for ever), and so is a
  system tree: a folder on a kernel file system such as ``/proc`` or ``/sys`` (whose
  files claim sizes they do not have and never end) or one holding such a mount (``/``).
* No symbolic link in it leads to a folder outside it, or to a folder holding it (a
  loop): the fingerprint of the source stage covers the tree, so a link leading out
  would let prepare read images that no fingerprint sees (an image added there would
  never re-run prepare). A link to a file outside is never opened: the fingerprint
  records where it points and prepare rejects it as a bad image. ``data.root`` must
  stay in the source, and the class folders in the data folder it names.

Everything here is a stat, a readlink or one listing: nothing is opened but
``/proc/self/mountinfo``.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

from pipeline.data.source_errors import SourceError
from pipeline.data.sources.names import SPECIAL, shown

MOUNTINFO = Path("/proc/self/mountinfo")
# Kernel and virtual file systems: their files are not data and some never end.
PSEUDO = frozenset({
    "autofs", "binder", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
    "devpts", "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc",
    "pstore", "rpc_pipefs", "securityfs", "selinuxfs", "sysfs", "tracefs",
})
# When the mount table cannot be read (not Linux, a restricted container): by path.
SYSTEM_TREES = {"/proc": "proc", "/sys": "sysfs"}


def local_source(spec: str) -> Path:
    """``data.source`` as a path that exists and may be read (see the module), else
    SourceError naming it and why, in one line."""
    path = Path(spec).expanduser()
    try:
        info = os.stat(path)  # follows links; opens nothing
    except OSError as err:
        raise SourceError(f"data.source: {spec!r} {_missing(path, err)}") from None
    kind = SPECIAL.get(stat.S_IFMT(info.st_mode))
    if kind is not None:
        raise SourceError(f"data.source: {spec!r} is a {kind}, not a folder or an archive; "
                          "it is not opened")
    why = system_tree(os.path.realpath(path))
    if why:
        raise SourceError(f"data.source: {spec!r} {why}, not data: set data.source to a "
                          "folder of class folders or an archive")
    if stat.S_ISDIR(info.st_mode):
        try:
            with os.scandir(path):
                pass
        except OSError as err:
            raise SourceError(f"data.source: folder {spec!r} cannot be read "
                              f"({err.strerror}): fix its permissions (chmod -R u+rX)") from None
    return path


def _missing(path: Path, err: OSError) -> str:
    if err.errno == errno.ELOOP:
        return "is a symbolic link loop (a link that leads back to itself)"
    if path.is_symlink():
        return f"does not exist (a broken symbolic link to {os.readlink(path)!r})"
    if err.errno == errno.ENOENT:
        return "does not exist"
    return f"cannot be read ({err.strerror})"


def _unescape(field: str) -> str:
    # mountinfo writes a space, a tab, a newline and a backslash in a path as \040 etc.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts() -> list[tuple[str, str]]:
    """(mount point, file system type) of every mount, in the kernel's order (a later
    mount on the same point hides an earlier one); [] when the table cannot be read."""
    try:
        lines = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields, types = left.split(), right.split()
        if sep and len(fields) >= 5 and types:
            found.append((_unescape(fields[4]), types[0]))
    return found


def system_tree(real: str) -> str | None:
    """Why the folder or file at ``real`` (a real path) is a system tree, or None."""
    table = mounts() or list(SYSTEM_TREES.items())
    on, fs = "", None
    for point, kind in table:  # the mount holding ``real``: the longest point, the last one
        if is_inside(real, point) and len(point) >= len(on):
            on, fs = point, kind
    if fs in PSEUDO:
        return f"is in {on}, a {fs} file system (a system tree)"
    for point, kind in table:
        if kind in PSEUDO and point != real and is_inside(point, real):
            return f"holds {point}, a {kind} file system (a system tree)"
    for point, kind in SYSTEM_TREES.items():  # a mount table without them: by path too
        if is_inside(real, point):
            return f"is in {point}, a {kind} file system (a system tree)"
    return None


def is_inside(path: str | bytes, top: str | bytes) -> bool:
    """Whether the real path ``path`` is ``top`` or under it."""
    path, top = os.fsdecode(path), os.fsdecode(top)
    return os.path.commonpath([path, top]) == top


def outside_link(path: str | bytes | Path, top: str) -> str | None:
    """For a symbolic link at ``path`` leading outside the real folder ``top``: where it
    leads (as written in the link); None for a link that stays inside, a broken link
    (skipped: it leads nowhere; once its target appears it is checked) or no link.
    """
    if not os.path.islink(path) or not os.path.exists(path):
        return None
    target = os.path.realpath(path)
    if is_inside(target, top):
        return None
    return os.fsdecode(os.readlink(path))


def check_folder_link(path: Path | str | bytes, top: str, rel: str | bytes, what: str = "",
                      *, key: str = "data.source", within: str = "the source") -> None:
    """SourceError if ``path`` (``rel`` in the source; ``what`` it is read as, "class
    folder ") is a link to a folder outside the real folder ``top`` (``within``: what that
    is), or to a folder holding it: a loop, that would read the tree again. A link to a
    file outside is not refused here: it is never opened (the fingerprint records where
    it points; prepare's image check rejects it, as data.images.bad says)."""
    leads = outside_link(path, top)
    if leads is not None and os.path.isdir(path):
        raise SourceError(
            f"{key}: {what}{shown(rel)} is a symbolic link to {leads!r}, a folder outside "
            f"{within} {top!r}, where nothing is read (the source stage's fingerprint would not "
            "see it change): replace the link by that folder (or a bind mount), or set "
            "data.source to a folder holding both"
        )
    if os.path.islink(path) and os.path.isdir(path) and is_inside(
            os.path.realpath(os.path.dirname(path)), os.path.realpath(path)):
        raise SourceError(
            f"{key}: {what}{shown(rel)} is a symbolic link to {os.fsdecode(os.readlink(path))!r}"
            ", a folder that holds it (a loop): remove the link"
        )
