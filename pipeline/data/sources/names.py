"""File and member names the pipeline cannot carry: not UTF-8, or longer than a file system allows.

The manifest, the reports and DVC's lock file are UTF-8 text, so a name that is not
UTF-8 (Latin-1 from an old camera or Windows zip tool; Python keeps its bytes as
lone surrogates) would break them later, far from the cause. Such names are refused
where they are met, and shown as their bytes, escaped, since they cannot be printed.
"""

from __future__ import annotations

import os
import stat

NAME_MAX = 255  # bytes in one path component on ext4, XFS, APFS, NTFS (UTF-16 units there)
PATH_MAX = 4096  # bytes in a whole path on Linux
# Files that block or fail when opened (a FIFO waits for a writer): listed, never opened.
SPECIAL = {stat.S_IFIFO: "FIFO", stat.S_IFSOCK: "socket", stat.S_IFCHR: "character device",
           stat.S_IFBLK: "block device"}


def shown(name: str | bytes) -> str:
    """``name`` as it can be printed: quoted text if it is UTF-8, else its escaped bytes
    (``b'caf\\xe9.png'``)."""
    raw = name if isinstance(name, bytes) else os.fsencode(name)
    try:
        return repr(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(raw)


def not_utf8(name: str) -> bool:
    """True for a name holding bytes that are not UTF-8 (kept by Python as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def too_long(parts: list[str] | tuple[str, ...]) -> str | None:
    """Why a relative path of ``parts`` cannot be created, or None when it can."""
    for part in parts:
        size = len(os.fsencode(part))
        if size > NAME_MAX:
            return f"a path component is {size} bytes long, more than the {NAME_MAX} a file " \
                   "system allows"
    total = len(os.fsencode("/".join(parts)))
    if total > PATH_MAX // 2:  # the extraction folder's own path takes some of PATH_MAX
        return f"the path is {total} bytes long, more than the {PATH_MAX // 2} allowed"
    return None
