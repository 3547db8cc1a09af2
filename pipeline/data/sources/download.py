"""Download an archive once into the cache: streamed, size-capped, hash-pinned, atomic.

A URL is downloaded into ``folder/<url hash>/`` through a temporary file that is
renamed into place only when complete, and its sha256 is checked against the
pinned one if given: a file that does not match is never stored or used.
"""

from __future__ import annotations

import hashlib
import re
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from pipeline.core.hashing import CHUNK, file_digest
from pipeline.core.io import atomic_path
from pipeline.core.net import DOWNLOAD_TIMEOUT
from pipeline.data.errors import SourceError


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
        cached = file_digest(target)  # re-hashed: a cache can be corrupted or edited
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
