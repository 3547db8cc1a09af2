"""Download an archive once into the cache: whole or nothing, bounded in time, re-checked.

A URL is downloaded into ``folder/<url hash>/`` through a temporary file that is
renamed into place only when it is whole:

* the bytes received must be the Content-Length declared (a server that closes the
  connection early would otherwise hand over part of a ``.tar``, which opens fine);
* the archive must pass its own checks (:func:`archives.verify_archive`: zip central
  directory and CRCs, tar end-of-archive block, gzip/bz2/xz checks);
* the pinned sha256, if any, must match.

A failure keeps nothing. Every read has a timeout, every attempt a minimum rate (like
curl's ``--speed-limit``/``--speed-time``: a server that trickles a byte a second fails
within ``min_rate_seconds``) and the whole download (retries included) a deadline.
A reset connection, a body cut short, a timeout or a 5xx is retried with back-off
(a 4xx, an unknown host or a refused connection is not: retrying would not help).

Credentials in the URL are sent in a header and never shown or stored
(pipeline.data.sources.urls); its path and query are requested percent-encoded, as a
browser sends them. Beside the archive, ``download.json`` records its URL (shown without
the password), length and sha256; a cached copy is reused only if it still has both (a
copy from before the record was kept, or with a damaged record, is re-checked as an
archive instead), else it is discarded with its extraction.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import re
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

from pipeline.core.hashing import CHUNK, file_digest
from pipeline.core.io import atomic_path, write_json
from pipeline.core.net import DOWNLOAD_TIMEOUT, redacted
from pipeline.data.source_errors import SourceError
from pipeline.data.sources.archives import discard_extraction, verify_archive
from pipeline.data.sources.urls import bare, cache_key, opener

log = logging.getLogger(__name__)

RECORD = "download.json"  # beside the archive: {"url", "bytes", "sha256"}
_RECORD_FIELDS = {"url": str, "bytes": int, "sha256": str}
BACKOFF = 1.0  # seconds before the first retry, doubled after each


class _Transient(Exception):
    """A failure worth another attempt; the message says what was received."""


def cache_paths(url: str, folder: Path) -> tuple[Path, Path]:
    """(where ``url``'s archive is cached, its record) under the downloads ``folder``: a
    folder named by a hash of the URL without its password (urls.cache_key)."""
    target_dir = Path(folder) / hashlib.sha256(cache_key(url).encode("utf-8")).hexdigest()[:16]
    name = PurePosixPath(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    return target_dir / (_safe_file_name(name) or "archive"), target_dir / RECORD


def recorded(url: str, folder: Path) -> dict | None:
    """The record of ``url``'s cached download, if its archive is there with the recorded
    length (a stat, no hashing: what the source stage's fingerprint needs)."""
    target, record_file = cache_paths(url, folder)
    record = _read_record(record_file)
    if record is None or record.get("url") != redacted(url) or not target.is_file():
        return None
    return record if target.stat().st_size == record.get("bytes") else None


def download(
    url: str, folder: Path, *, sha256: str | None, max_bytes: int, allow_download: bool = True,
    deadline: float = 3600, timeout: float = DOWNLOAD_TIMEOUT, retries: int = 3,
    min_rate: int = 1024, min_rate_seconds: float = 15, extracted: Path | None = None,
) -> tuple[Path, str]:
    """(cached copy of ``url``, its sha256), downloaded whole (see the module) if needed.

    The cache key is the URL, so a changed pin does not re-download by itself; a
    cached file that does not match the pin is downloaded again, and if the fresh
    copy does not match either it is discarded with an error. A cached copy that no
    longer has its recorded length and hash is discarded, with its extraction under
    ``extracted``. ``allow_download=False``: SourceError instead of a download.
    An attempt averaging fewer than ``min_rate`` bytes/s over ``min_rate_seconds`` is
    abandoned (and retried); ``min_rate=0`` sets no floor.
    """
    target, record_file = cache_paths(url, folder)
    if target.is_file():
        cached = _revalidate(url, target, record_file, max_bytes, extracted)
        if cached is not None and (sha256 is None or cached == sha256):
            return target, cached
    if not allow_download:
        raise SourceError(
            f"data.source: {redacted(url)} is not in the download cache ({target.parent}); run the "
            "prepare stage first (`dvc repro prepare`), which downloads it"
        )

    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "url.txt").write_text(redacted(url) + "\n", encoding="utf-8")  # for humans
    # The suffix keeps the archive type readable from the temporary file's name.
    with atomic_path(target, suffix=".part" + "".join(target.suffixes[-2:])) as tmp:
        size, digest = _fetch(url, tmp, target, max_bytes=max_bytes, deadline=deadline,
                              timeout=timeout, retries=retries,
                              min_rate=(min_rate, min_rate_seconds))
        if sha256 is not None and digest != sha256:
            raise SourceError(
                f"data.source: download of {redacted(url)} has sha256 {digest}, but {sha256} is "
                "pinned; the file is discarded (check the URL, or update data.sha256 if "
                "the archive was intentionally replaced)"
            )
        try:
            verify_archive(tmp, max_bytes)
        except SourceError as err:
            raise SourceError(
                f"data.source: download of {redacted(url)} ({size:,} bytes, as declared) is not a "
                f"whole archive: {str(err).replace(tmp.name, target.name)}; nothing kept "
                f"in the cache ({target})"
            ) from None
    write_json(record_file, {"url": redacted(url), "bytes": size, "sha256": digest})
    return target, digest


def _read_record(path: Path) -> dict | None:
    """The record at ``path``, or None if there is none or it is not one (damaged or edited
    by hand): the cached copy is then re-checked as an archive, as one from before records."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or any(
            type(record.get(key)) is not kind for key, kind in _RECORD_FIELDS.items()):
        return None
    return record


def _revalidate(url: str, target: Path, record_file: Path, max_bytes: int,
                extracted: Path | None) -> str | None:
    """The cached copy's sha256 if it is still the download it was, else None (discarded)."""
    record = _read_record(record_file)
    digest = file_digest(target)  # re-hashed: a cache can be corrupted or edited
    size = target.stat().st_size
    if record is not None and record.get("url") == redacted(url):
        if (size, digest) == (record.get("bytes"), record.get("sha256")):
            return digest
        why = (f"is {size:,} bytes with sha256 {digest[:12]}, but {record.get('bytes'):,} "
               f"bytes with sha256 {str(record.get('sha256'))[:12]} were downloaded")
    else:  # cached before records were kept, or a run killed before writing it
        try:
            verify_archive(target, max_bytes)
        except SourceError as err:
            why = f"fails its check ({err})"
        else:
            write_json(record_file, {"url": redacted(url), "bytes": size, "sha256": digest})
            return digest
    log.warning(f"warning: cached download {target} of {redacted(url)} {why}: discarded with its "
                "extraction; downloading again")
    target.unlink()
    record_file.unlink(missing_ok=True)
    if extracted is not None:
        for stale in {digest, str((record or {}).get("sha256") or digest)}:
            discard_extraction(extracted, stale)
    return None


def _safe_file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name).lstrip(".")


def _fetch(url: str, dest: Path, target: Path, *, max_bytes: int, deadline: float,
           timeout: float, retries: int, min_rate: tuple[int, float]) -> tuple[int, str]:
    """Stream ``url`` into ``dest`` whole, retrying transient failures; (bytes, sha256)."""
    end = time.monotonic() + deadline
    for attempt in range(1, retries + 2):
        try:
            return _attempt(url, dest, target, max_bytes, end, deadline, timeout, min_rate)
        except _Transient as err:
            wait = BACKOFF * 2 ** (attempt - 1)
            if attempt > retries or time.monotonic() + wait >= end:
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                raise SourceError(f"data.source: download of {redacted(url)} failed after "
                                  f"{tries}: {err}; nothing kept in the cache ({target})"
                                  ) from None
            log.warning(f"warning: download of {redacted(url)}: {err}; retry {attempt}/{retries} "
                        f"in {wait:g} s")
            time.sleep(wait)
    raise AssertionError("unreachable")  # the loop returns or raises


class _Pace:
    """The minimum rate (curl's ``--speed-limit``/``--speed-time``): the body's time is cut
    into windows of ``seconds`` from its start, and each must bring ``rate`` x ``seconds``
    bytes. A trickle fails at the end of the first window, a stall within two."""

    def __init__(self, rate: int, seconds: float, now: float) -> None:
        self.rate, self.seconds = rate, seconds
        self.end, self.at_start = now + seconds, 0  # the current window's end; bytes before it

    def check(self, now: float, received: int) -> None:
        """_Transient when a window that has closed brought too little."""
        while self.rate and now >= self.end:
            if received - self.at_start < self.rate * self.seconds:
                raise self.slow(received)
            self.end, self.at_start = self.end + self.seconds, received

    def fails_at(self, received: int) -> float:
        """When the attempt fails if no other byte arrives (the next read's time bound)."""
        if not self.rate:
            return float("inf")
        enough = received - self.at_start >= self.rate * self.seconds
        return self.end + self.seconds if enough else self.end

    def slow(self, received: int) -> _Transient:
        return _Transient(
            f"slower than {self.rate:,} bytes/s over {self.seconds:g} s (data.download."
            f"min_rate, min_rate_seconds): {received - self.at_start:,} bytes in the last "
            f"{self.seconds:g} s, {received:,} in all")


def _attempt(url: str, dest: Path, target: Path, max_bytes: int, end: float, deadline: float,
             timeout: float, min_rate: tuple[int, float]) -> tuple[int, str]:
    digest = hashlib.sha256()
    received, declared, pace = 0, None, None
    name = redacted(url)

    def late() -> SourceError:
        expected = f" of {declared:,}" if declared is not None else ""
        return SourceError(
            f"data.source: download of {name} did not finish within {deadline:g} s "
            f"(data.download.deadline): {received:,}{expected} bytes received; nothing kept "
            f"in the cache ({target})"
        )

    request = urllib.request.Request(_requested(url), headers={"User-Agent": "transfer-pipeline"})
    try:
        left = end - time.monotonic()
        if left <= 0:
            raise late()
        with opener(url).open(request, timeout=min(timeout, left)) as response, \
                open(dest, "wb") as out:
            length = response.headers.get("Content-Length")
            declared = int(length) if length and length.isdigit() else None
            if declared is not None and declared > max_bytes:
                raise SourceError(
                    f"data.source: {name} is {declared:,} bytes, more than the "
                    f"{max_bytes:,} allowed (max_bytes)"
                )
            pace = _Pace(*min_rate, time.monotonic())
            while True:
                now = time.monotonic()
                left = end - now
                if left <= 0:
                    raise late()
                pace.check(now, received)
                _read_timeout(response, min(timeout, left, pace.fails_at(received) - now))
                chunk = response.read1(CHUNK)  # what has arrived: read() would wait for 1 MiB
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise SourceError(
                        f"data.source: {name} sent more than the {max_bytes:,} bytes "
                        "allowed (max_bytes); download abandoned"
                    )
                digest.update(chunk)
                try:
                    out.write(chunk)
                except OSError as err:  # the disk (full, say), not the network: no retry
                    raise SourceError(
                        f"data.source: download of {name} cannot be written to the cache "
                        f"({target}): {err}; nothing kept") from None
    except urllib.error.HTTPError as err:
        if 500 <= err.code < 600:
            raise _Transient(f"HTTP {err.code} {err.reason}") from None
        raise SourceError(f"data.source: download of {name} failed: HTTP {err.code} "
                          f"{err.reason}") from None
    except TimeoutError:
        now = time.monotonic()
        if now >= end:
            raise late() from None
        if pace is not None and now >= pace.fails_at(received) - 0.01:  # woken a bit early
            pace.check(pace.fails_at(received), received)  # raises, for the window that failed
        raise _Transient(f"no byte for {timeout:g} s (data.download.timeout) after "
                         f"{received:,} bytes") from None
    except (ConnectionError, http.client.HTTPException) as err:  # reset, cut short
        raise _Transient(f"{type(err).__name__} after {received:,} bytes") from None
    except urllib.error.URLError as err:  # unknown host, refused: another try would not help
        if isinstance(err.reason, TimeoutError):
            raise _Transient(f"no answer within {timeout:g} s (data.download.timeout)") from None
        raise _offline(name, err.reason) from None
    except OSError as err:
        raise _offline(name, err) from None
    if declared is not None and received != declared:
        raise _Transient(f"received {received:,} bytes of the {declared:,} declared "
                         "(Content-Length): the connection closed early")
    return received, digest.hexdigest()


def _requested(url: str) -> str:
    """The URL requested: without its credentials (they go in a header, urls.opener), its
    path and query percent-encoded as a browser sends them (a URL copied from its address
    bar may hold spaces or accents, which http.client refuses); escapes already there kept."""
    parts = urllib.parse.urlsplit(bare(url))
    return urllib.parse.urlunsplit(parts._replace(
        path=urllib.parse.quote(parts.path, safe=string.punctuation),
        query=urllib.parse.quote(parts.query, safe=string.punctuation)))


def _read_timeout(response: http.client.HTTPResponse, seconds: float) -> None:
    """Bound the next read by ``seconds`` (the deadline's rest), not only the per-read timeout.

    http.client keeps its socket private; without it the deadline is still checked
    after every read, so it is overrun by one per-read timeout at most.
    """
    sock = getattr(getattr(response.fp, "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _offline(name: str, reason: object) -> SourceError:
    return SourceError(
        f"data.source: cannot download {name} ({reason}). On an offline machine, "
        "download the archive elsewhere and set data.source to its local path."
    )
