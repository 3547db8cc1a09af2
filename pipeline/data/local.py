"""A local ``data.source`` checked without opening it, and without importing the source
machinery (pandas and all): the params stage's pre-flight and the source stage share it.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from pipeline.core.stage import shown_path
from pipeline.data.errors import SourceError


def is_url(spec: str) -> bool:
    return urllib.parse.urlsplit(spec).scheme.lower() in ("http", "https")


def check_local(spec: str) -> None:
    """Refuse a local ``data.source`` that does not exist or is a FIFO, a socket, a device,
    in one line naming it; a URL passes (only a request could tell)."""
    if is_url(spec):
        return
    path = Path(spec).expanduser()
    if not path.exists():
        hint = " (a broken symbolic link)" if path.is_symlink() else ""
        raise SourceError(f"data.source: {shown_path(spec)} does not exist{hint}")
    if not (path.is_dir() or path.is_file()):  # never opened: a FIFO would wait for ever
        raise SourceError(f"data.source: {shown_path(spec)} is a special file (a FIFO, a "
                          "socket, a device), not a folder, an archive or an http(s) URL")
