"""Downloads in-process, against a scripted server on a fake clock: the cache and its
record, when a cached copy is reused, each failure's one-line message, retries and their
back-off, the deadline and the minimum rate, at their edges.

No socket is opened and nothing sleeps: the clock moves only when a scripted read waits
or a back-off sleeps, so the times below are exact. The same behaviours against a real
loopback server are in tests/test_sources.py.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import importlib
import json
import os
import re
import socket
import urllib.error
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import GOOD, PNG, c_locale, make_tar, make_zip

from pipeline.data.source_errors import SourceError

download_module = importlib.import_module("pipeline.data.sources.download")  # the package
# re-exports its download() function under the module's name
cache_paths, recorded = download_module.cache_paths, download_module.recorded

URL = "https://alice:s3cret@example.org/data/d.zip"
SHOWN = "https://alice:***@example.org/data/d.zip"  # what messages and records show


class Clock:
    """time.monotonic and time.sleep of the download module. ``oversleep``: a loaded
    machine wakes that much late from a back-off."""

    def __init__(self) -> None:
        self.now, self.slept, self.oversleep = 0.0, [], 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds + self.oversleep


class Socket:
    """The response's socket, whose timeout download sets before each read."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout  # as urllib opens it: the per-read timeout

    def settimeout(self, seconds: float | None) -> None:
        self.timeout = seconds


class Response:
    """A reply whose body arrives as scripted: steps of (seconds until it arrives, bytes,
    an exception that read raises, or a function giving the bytes). A read waits at most
    its socket's timeout, then raises TimeoutError, ``early`` seconds before it as a real
    socket may; timeout 0 is a non-blocking socket. ``private``: the socket out of
    download's reach, as in an http.client that would hide it."""

    def __init__(self, clock: Clock, length: str | int | None, steps: list, timeout: float,
                 private: bool, early: float) -> None:
        self.headers = http.client.HTTPMessage()
        if length is not None:
            self.headers["Content-Length"] = str(length)
        self.clock, self.steps, self.early = clock, list(steps), early
        self.socket = Socket(timeout)
        self.fp = None if private else SimpleNamespace(raw=SimpleNamespace(_sock=self.socket))

    def __enter__(self) -> Response:
        return self

    def __exit__(self, *exc) -> None:
        pass

    def read1(self, size: int) -> bytes:
        if not self.steps:
            return b""
        delay, data = self.steps[0]
        limit = self.socket.timeout
        if limit == 0 and delay > 0:
            raise BlockingIOError(errno.EAGAIN, os.strerror(errno.EAGAIN))
        if limit is not None and delay > limit:
            self.clock.now += limit - self.early
            self.steps[0] = (delay - limit + self.early, data)
            raise TimeoutError("timed out")
        self.clock.now += delay
        self.steps.pop(0)
        if isinstance(data, BaseException):
            raise data
        if callable(data):  # a look at the files while the body is on its way
            data = data()
        return data[:size]


class Server:
    """Stands for urls.opener(url): each request gets the next reply, the last one again
    once the others are used. A reply: (Content-Length or None, steps), or an exception
    the request raises. Each request is logged as (URL, User-Agent, timeout), and the URL
    each opener was made for (its credentials) in ``openers``."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.replies, self.requests, self.openers = clock, [], [], []
        self.private, self.early = False, 0.0

    def __call__(self, url: str) -> Server:
        self.openers.append(url)
        return self

    def open(self, request, timeout: float) -> Response:
        sent = f"{request.type}://{request.host}{request.selector}"  # no #fragment
        self.requests.append((sent, request.get_header("User-agent"), timeout))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, BaseException):
            raise reply
        length, steps = reply
        return Response(self.clock, length, steps, timeout, self.private, self.early)


@pytest.fixture
def net(monkeypatch) -> Server:
    """The scripted server (and its clock, ``net.clock``) in place of the network."""
    clock = Clock()
    server = Server(clock)
    monkeypatch.setattr(download_module, "time", clock)
    monkeypatch.setattr(download_module, "opener", server)
    return server


def whole(body: bytes) -> tuple[int, list]:
    """A reply sending all of ``body`` at once, as declared."""
    return len(body), [(0, body)]


def http_error(code: int, reason: str) -> urllib.error.HTTPError:
    return urllib.error.HTTPError(URL, code, reason, http.client.HTTPMessage(), None)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def body(tmp_path_factory) -> bytes:
    """A zip archive, as the server sends it."""
    return make_zip(tmp_path_factory.mktemp("served") / "d.zip", GOOD).read_bytes()


NO_FLOOR = {"deadline": 100, "timeout": 10, "retries": 0, "min_rate": 0,
            "min_rate_seconds": 1}


def fetch(folder: Path, url: str = URL, **settings) -> tuple[Path, str]:
    settings = NO_FLOOR | {"sha256": None, "max_bytes": 10**7} | settings
    return download_module.download(url, folder, **settings)


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


def warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == download_module.__name__]


# --------------------------------------------------------------------------- the cache


def test_the_cache_folder_is_named_by_the_url_without_its_password(tmp_path):
    folder = tmp_path / "downloads"
    key = sha(b"https://alice@example.org/data/d.zip?v=2")[:16]
    assert cache_paths("https://alice:s3cret@example.org/data/d.zip?v=2", folder) == (
        folder / key / "d.zip", folder / key / "download.json")
    assert cache_paths("https://alice:n3w@example.org/data/d.zip?v=2", folder)[0] == (
        folder / key / "d.zip")  # a new password: the same download
    assert cache_paths("https://bob:s3cret@example.org/data/d.zip?v=2", folder)[0].parent \
        != folder / key  # another user's is their own


@pytest.mark.parametrize(("path", "name"), [
    ("/a/Flowers%20(v2).tar.gz", "Flowers__v2_.tar.gz"),
    ("/A-b_c.9.ZIP", "A-b_c.9.ZIP"),
    ("/caf%C3%A9.zip", "caf_.zip"),
    ("/..hidden.tgz.", "hidden.tgz."),  # no hidden file
    ("/Xmas.tar", "Xmas.tar"),
    ("/a/..%2F..%2Fetc%2Fpasswd", "passwd"),  # an escaped / separates too
    ("/%2E%2E", "archive"),
    ("/", "archive"),
    ("", "archive"),
])
def test_the_cached_file_is_named_safely_after_the_url(tmp_path, path, name):
    target, _ = cache_paths(f"https://example.org{path}", tmp_path)
    assert target.name == name and target.parent.parent == tmp_path


def _cache(folder: Path, body: bytes, url: str = URL, **record) -> tuple[Path, Path, dict]:
    """``url``'s archive in the cache as a download left it, with its record (changed by
    ``record``)."""
    target, record_file = cache_paths(url, folder)
    target.parent.mkdir(parents=True)
    target.write_bytes(body)
    fields = {"url": SHOWN, "bytes": len(body), "sha256": sha(body)} | record
    record_file.write_text(json.dumps(fields))
    return target, record_file, fields


def test_recorded_needs_this_urls_record_and_its_archive_at_the_recorded_length(tmp_path):
    assert recorded(URL, tmp_path) is None  # nothing cached
    target, record_file, record = _cache(tmp_path, b"x" * 10)
    assert recorded(URL, tmp_path) == record
    assert recorded("https://alice:n3w@example.org/data/d.zip", tmp_path) == record
    target.write_bytes(b"x" * 11)
    assert recorded(URL, tmp_path) is None  # changed since
    target.write_bytes(b"x" * 10)
    record_file.write_text(json.dumps(record | {"url": "https://example.org/other.zip"}))
    assert recorded(URL, tmp_path) is None  # a record of another URL
    record_file.write_text(json.dumps(record))
    target.unlink()
    assert recorded(URL, tmp_path) is None  # the archive is gone
    record_file.unlink()
    target.write_bytes(b"x" * 10)
    assert recorded(URL, tmp_path) is None  # no record


DAMAGED = {
    "not JSON": "{", "a list": "[1]", "a string": '"x"',
    "no url": {"url": None}, "no bytes": {"bytes": None}, "no sha256": {"sha256": None},
    "bytes as text": {"bytes": "10"}, "bytes as a truth": {"bytes": True},
    "url as a list": {"url": [SHOWN]}, "sha256 as a number": {"sha256": 1},
}


@pytest.mark.parametrize("damage", DAMAGED.values(), ids=DAMAGED.keys())
def test_a_damaged_record_is_no_record_and_the_copy_is_checked_again(tmp_path, net, body,
                                                                    damage):
    """A download.json edited by hand or damaged does not stop the run: the cached copy
    is checked as an archive, recorded afresh and reused, without a request."""
    target, record_file, record = _cache(tmp_path, body)
    if isinstance(damage, str):
        record_file.write_text(damage)
    else:
        record_file.write_text(json.dumps({k: v for k, v in (record | damage).items()
                                           if v is not None}))
    assert recorded(URL, tmp_path) is None
    assert fetch(tmp_path) == (target, sha(body)) and net.requests == []
    assert json.loads(record_file.read_text()) == record
    assert recorded(URL, tmp_path) == record


def test_a_record_that_is_a_folder_is_no_record(tmp_path):
    target, record_file, _ = _cache(tmp_path, b"x")
    record_file.unlink()
    record_file.mkdir()
    assert recorded(URL, tmp_path) is None


def test_a_record_in_utf8_is_read_whatever_the_locale(tmp_path):
    url = "https://example.org/donn\u00e9es.zip"  # as jq or an editor writes it: not escaped
    target, record_file = cache_paths(url, tmp_path)
    target.parent.mkdir(parents=True)
    target.write_bytes(b"x" * 10)
    record = {"url": url, "bytes": 10, "sha256": "ab" * 32}
    record_file.write_bytes(json.dumps(record, ensure_ascii=False).encode("utf-8"))
    with c_locale():
        assert recorded(url, tmp_path) == record


def test_a_download_is_kept_with_its_record_and_reused_while_it_matches_its_pin(tmp_path,
                                                                              net, body):
    folder = tmp_path / "downloads"
    net.replies = [whole(body)]
    target, record_file = cache_paths(URL, folder)
    assert fetch(folder) == (target, sha(body)) and target.read_bytes() == body
    assert json.loads(record_file.read_text()) == {
        "url": SHOWN, "bytes": len(body), "sha256": sha(body)}
    assert (target.parent / "url.txt").read_text() == SHOWN + "\n"  # for a human
    assert fetch(folder) == (target, sha(body))
    assert fetch(folder, sha256=sha(body)) == (target, sha(body))
    assert len(net.requests) == 1  # reused: no second request
    # A pin the cached copy does not match: downloaded again, and the server's new
    # archive, which matches, replaces it.
    other = make_zip(tmp_path / "other.zip", {"owl/1.png": PNG}).read_bytes()
    net.replies = [whole(other)]
    assert fetch(folder, sha256=sha(other)) == (target, sha(other))
    assert target.read_bytes() == other and len(net.requests) == 2
    assert json.loads(record_file.read_text())["sha256"] == sha(other)
    # A pin no download matches: the new download is discarded, the cached copy stays.
    with pytest.raises(SourceError) as err:
        fetch(folder, sha256="0" * 64)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} has sha256 {sha(other)}, but {'0' * 64} is pinned; "
        "the file is discarded (check the URL, or update data.sha256 if the archive was "
        "intentionally replaced)")
    assert len(net.requests) == 3 and target.read_bytes() == other
    assert files(folder) == ["d.zip", "download.json", "url.txt"]


def test_without_download_a_url_not_cached_is_an_error_saying_what_to_run(tmp_path, net):
    with pytest.raises(SourceError) as err:
        fetch(tmp_path / "downloads", allow_download=False)
    target, _ = cache_paths(URL, tmp_path / "downloads")
    assert str(err.value) == (
        f"data.source: {SHOWN} is not in the download cache ({target.parent}); run the "
        "prepare stage first (`dvc repro prepare`), which downloads it")
    assert net.requests == [] and not (tmp_path / "downloads").exists()


def test_a_changed_cached_copy_is_named_and_discarded_with_its_extractions(tmp_path, net,
                                                                          body, caplog):
    target, record_file, _ = _cache(tmp_path / "downloads", body)
    changed = body + b"junk"
    target.write_bytes(changed)
    extracted = tmp_path / "extracted"
    for digest in (sha(body), sha(changed), "f" * 64):  # the recorded one's, the copy's
        (extracted / digest[:16]).mkdir(parents=True)
    net.replies = [whole(body)]
    assert fetch(tmp_path / "downloads", extracted=extracted) == (target, sha(body))
    assert warnings(caplog) == [
        f"warning: cached download {target} of {SHOWN} is {len(changed):,} bytes with sha256 "
        f"{sha(changed)[:12]}, but {len(body):,} bytes with sha256 {sha(body)[:12]} were "
        "downloaded: discarded with its extraction; downloading again"]
    assert sorted(p.name for p in extracted.iterdir()) == ["f" * 16]  # another archive's
    assert len(net.requests) == 1 and target.read_bytes() == body


def test_a_copy_recorded_for_another_url_is_checked_and_recorded_for_this_one(tmp_path, net,
                                                                              body):
    target, record_file, record = _cache(tmp_path, body, url="https://example.org/d.zip")
    record_file.write_text(json.dumps(record | {"url": "https://example.org/old.zip"}))
    plain = "https://example.org/d.zip"
    assert fetch(tmp_path, plain) == (target, sha(body)) and net.requests == []
    assert json.loads(record_file.read_text())["url"] == plain


def test_a_copy_without_a_record_that_fails_its_check_is_discarded_with_its_extraction(
        tmp_path, net, body, caplog):
    target, record_file, _ = _cache(tmp_path / "downloads", body[:-30])
    record_file.unlink()
    extracted = tmp_path / "extracted"
    (extracted / sha(body[:-30])[:16]).mkdir(parents=True)
    net.replies = [whole(body)]
    assert fetch(tmp_path / "downloads", extracted=extracted) == (target, sha(body))
    said = warnings(caplog)
    assert len(said) == 1 and said[0].startswith(
        f"warning: cached download {target} of {SHOWN} fails its check (")
    assert said[0].endswith("): discarded with its extraction; downloading again")
    assert list(extracted.iterdir()) == []


# --------------------------------------------------------------------------- the transfer


def test_the_request_carries_no_credentials_and_escapes_the_url_as_a_browser(tmp_path, net,
                                                                             body):
    """A URL copied from a browser's address bar may hold spaces and accents: sent
    escaped (http.client refuses them raw), escapes already there kept; shown as given."""
    url = ("https://alice:s3cret@example.org/my data/caf\u00e9%20v2.zip"
           "?name=\u00e9t\u00e9&x=a%2Fb#top")
    net.replies = [whole(body)]
    with c_locale():  # url.txt is UTF-8 whatever the locale
        target, _ = fetch(tmp_path, url)
    assert net.requests == [(
        "https://example.org/my%20data/caf%C3%A9%20v2.zip?name=%C3%A9t%C3%A9&x=a%2Fb",
        "transfer-pipeline", 10)]
    assert net.openers == [url]  # the opener sends the credentials, in a header
    assert (target.parent / "url.txt").read_bytes() == (
        "https://alice:***@example.org/my data/caf\u00e9%20v2.zip?name=\u00e9t\u00e9&x=a%2Fb#top"
        "\n").encode("utf-8")


def test_the_partial_file_is_beside_the_archive_named_as_its_type(tmp_path, net):
    """While it downloads, the temporary file keeps the archive's type in its name (the
    archive checks read it); it is gone after."""
    body = make_tar(tmp_path / "served.tgz", GOOD).read_bytes()
    url = "https://example.org/flowers.v2.tar.gz"
    target, _ = cache_paths(url, tmp_path / "downloads")
    seen = []

    def look() -> bytes:
        seen.extend(files(target.parent))
        return body[10:]

    net.replies = [(len(body), [(0, body[:10]), (0, look)])]
    fetch(tmp_path / "downloads", url)
    assert len(seen) == 2 and seen[1] == "url.txt", seen
    assert seen[0].startswith(".flowers.v2.tar.gz.") and seen[0].endswith(".part.tar.gz")
    assert files(target.parent) == ["download.json", "flowers.v2.tar.gz", "url.txt"]


def test_a_5xx_is_retried_after_a_doubling_back_off_and_the_attempts_are_counted(
        tmp_path, net, body, caplog):
    net.replies = [http_error(503, "Service Unavailable")]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, retries=2)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} failed after 3 attempts: HTTP 503 Service "
        f"Unavailable; nothing kept in the cache ({target})")
    assert net.clock.slept == [1, 2] and len(net.requests) == 3  # BACKOFF, doubled
    assert warnings(caplog) == [
        f"warning: download of {SHOWN}: HTTP 503 Service Unavailable; retry {n}/2 in {n} s"
        for n in (1, 2)]
    assert files(tmp_path) == ["url.txt"]
    with pytest.raises(SourceError, match=r"failed after 1 attempt: HTTP 503 Service Unav"):
        fetch(tmp_path, retries=0)
    net.replies = [http_error(502, "Bad Gateway"), whole(body)]  # then the server is back
    assert fetch(tmp_path, retries=1) == (target, sha(body))


def test_no_retry_starts_if_its_back_off_would_end_at_the_deadline(tmp_path, net):
    net.replies = [http_error(503, "Service Unavailable")]
    with pytest.raises(SourceError, match=r"failed after 3 attempts: HTTP 503"):
        fetch(tmp_path, retries=10, deadline=7)  # tries at 0, 1 and 3 s; 3 + 4 >= 7
    assert net.clock.slept == [1, 2]


def test_a_back_off_that_wakes_at_the_deadline_starts_no_attempt(tmp_path, net):
    """A loaded machine wakes late: an attempt starts only while time is left, bounded
    by what is left."""
    net.replies = [http_error(503, "Service Unavailable")]
    net.clock.oversleep = 1  # tries at 0, 2 and 5 s, then wakes at 10
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, retries=10, deadline=10)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} did not finish within 10 s "
        f"(data.download.deadline): 0 bytes received; nothing kept in the cache ({target})")
    assert len(net.requests) == 3
    net.clock.__init__()
    net.clock.oversleep = 0.5  # tries at 0, 1.5, 4 and 8.5 s: 0.5 s left for the last
    with pytest.raises(SourceError, match=r"failed after 4 attempts: HTTP 503"):
        fetch(tmp_path, retries=10, deadline=9)
    assert [timeout for _, _, timeout in net.requests[3:]] == [9, 7.5, 5, 0.5]


@pytest.mark.parametrize(("code", "reason", "retried"), [
    (404, "Not Found", False), (499, "Client Closed Request", False),
    (500, "Internal Server Error", True), (599, "Network Connect Timeout", True),
    (600, "Unknown", False)])
def test_only_a_5xx_is_retried(tmp_path, net, code, reason, retried):
    net.replies = [http_error(code, reason)]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, retries=1)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} failed after 2 attempts: HTTP {code} {reason}; "
        f"nothing kept in the cache ({target})" if retried else
        f"data.source: download of {SHOWN} failed: HTTP {code} {reason}")
    assert len(net.requests) == 1 + retried and files(tmp_path) == ["url.txt"]


def test_a_declared_length_over_max_bytes_is_refused_at_once_and_one_at_it_accepted(
        tmp_path, net, body):
    net.replies = [whole(body)]
    with pytest.raises(SourceError) as err:
        fetch(tmp_path / "a", max_bytes=len(body) - 1, retries=3)
    assert str(err.value) == (f"data.source: {SHOWN} is {len(body):,} bytes, more than the "
                              f"{len(body) - 1:,} allowed (max_bytes)")
    assert len(net.requests) == 1 and files(tmp_path / "a") == ["url.txt"]
    assert fetch(tmp_path / "b", max_bytes=len(body))[1] == sha(body)


def test_an_undeclared_length_over_max_bytes_is_refused_while_it_streams(tmp_path, net, body):
    net.replies = [(None, [(0, body[:100]), (0, body[100:])])]
    with pytest.raises(SourceError) as err:
        fetch(tmp_path / "a", max_bytes=len(body) - 1, retries=3)
    assert str(err.value) == (f"data.source: {SHOWN} sent more than the {len(body) - 1:,} "
                              "bytes allowed (max_bytes); download abandoned")
    assert len(net.requests) == 1 and files(tmp_path / "a") == ["url.txt"]
    target, digest = fetch(tmp_path / "b", max_bytes=len(body))  # exactly at the cap
    assert target.read_bytes() == body and digest == sha(body)
    assert json.loads(target.with_name("download.json").read_text())["bytes"] == len(body)


@pytest.mark.parametrize("length", ["abc", "1e3", ""])
def test_a_content_length_that_is_not_a_number_is_no_length(tmp_path, net, body, length):
    """As http.client reads it: the body is taken as it comes, checked as an archive."""
    net.replies = [(length, [(0, body[:100]), (0, body[100:])])]
    assert fetch(tmp_path)[1] == sha(body)


def test_a_body_shorter_than_declared_is_not_whole(tmp_path, net, body):
    net.replies = [(len(body), [(0, body[:100])])]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} failed after 1 attempt: received 100 bytes of the "
        f"{len(body):,} declared (Content-Length): the connection closed early; nothing kept "
        f"in the cache ({target})")
    assert files(tmp_path) == ["url.txt"]


def test_a_whole_body_that_is_not_a_whole_archive_is_not_kept(tmp_path, net, body):
    cut = body[:-30]  # the zip's central directory is gone
    net.replies = [whole(cut)]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, retries=3)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} ({len(cut):,} bytes, as declared) is not a whole "
        f"archive: archive d.zip is corrupt or truncated: File is not a zip file; nothing "
        f"kept in the cache ({target})")
    assert len(net.requests) == 1 and files(tmp_path) == ["url.txt"]


TRANSIENT = {
    "cut short": ((10, [(0, b"01234")]),
                  "received 5 bytes of the 10 declared (Content-Length): the connection "
                  "closed early"),
    "reset": ((10, [(0, b"01234"), (0, ConnectionResetError(104, "reset by peer"))]),
              "ConnectionResetError after 5 bytes"),
    "incomplete": ((10, [(0, b"012"), (0, http.client.IncompleteRead(b"34", 5))]),
                   "IncompleteRead after 3 bytes"),
    "no response": (http.client.RemoteDisconnected("closed without response"),
                    "RemoteDisconnected after 0 bytes"),
    "no headers": (TimeoutError("timed out"),  # a server that accepts and says nothing
                   "no byte for 10 s (data.download.timeout) after 0 bytes"),
    "no connection": (urllib.error.URLError(TimeoutError("timed out")),
                      "no answer within 10 s (data.download.timeout)"),
}


@pytest.mark.parametrize(("reply", "why"), TRANSIENT.values(), ids=TRANSIENT.keys())
def test_a_transient_failure_is_retried_and_named(tmp_path, net, body, caplog, reply, why):
    net.replies = [reply, whole(body)]
    target, _ = cache_paths(URL, tmp_path / "a")
    assert fetch(tmp_path / "a", retries=1) == (target, sha(body))
    assert warnings(caplog) == [f"warning: download of {SHOWN}: {why}; retry 1/1 in 1 s"]
    net.replies = [reply]
    target, _ = cache_paths(URL, tmp_path / "b")
    with pytest.raises(SourceError) as err:
        fetch(tmp_path / "b", retries=1)
    assert str(err.value) == (f"data.source: download of {SHOWN} failed after 2 attempts: "
                              f"{why}; nothing kept in the cache ({target})")
    assert files(tmp_path / "b") == ["url.txt"]


OFFLINE = {
    "refused": (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
                "[Errno 111] Connection refused"),
    "no such host": (urllib.error.URLError(socket.gaierror(-2, "Name or service not known")),
                     "[Errno -2] Name or service not known"),
    "no route": ((10, [(0, b"012"), (0, OSError(113, "No route to host"))]),
                 "[Errno 113] No route to host"),
}


@pytest.mark.parametrize(("reply", "reason"), OFFLINE.values(), ids=OFFLINE.keys())
def test_an_unreachable_host_is_not_retried_and_the_message_says_what_to_do(tmp_path, net,
                                                                            reply, reason):
    net.replies = [reply]
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, retries=3)
    assert str(err.value) == (
        f"data.source: cannot download {SHOWN} ({reason}). On an offline machine, download "
        "the archive elsewhere and set data.source to its local path.")
    assert len(net.requests) == 1 and net.clock.slept == [] and files(tmp_path) == ["url.txt"]


# --------------------------------------------------------------------------- time bounds


def test_the_deadline_stops_a_body_that_is_still_arriving(tmp_path, net):
    """Each read waits at most what is left; at the deadline the attempt ends, whatever
    has already arrived, and is not retried."""
    net.replies = [(10, [(4, b"ab"), (5.5, b"cd"), (0.5, b"ef"), (0, b"gh"), (0, b"ij")])]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, deadline=10, timeout=10, retries=3)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} did not finish within 10 s "
        f"(data.download.deadline): 6 of 10 bytes received; nothing kept in the cache "
        f"({target})")
    assert net.clock.now == 10 and len(net.requests) == 1 and files(tmp_path) == ["url.txt"]
    net.replies = [(None, [(4, b"ab"), (7, b"cd")])]  # the read waiting at the deadline
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, deadline=10, timeout=10)
    assert str(err.value).endswith(
        "did not finish within 10 s (data.download.deadline): 2 bytes received; nothing "
        f"kept in the cache ({target})")
    assert net.clock.now == 20


def test_a_read_waits_the_timeout_at_most(tmp_path, net):
    """A read that times out half a second before its window (2.5 s) closes failed by the
    timeout, not by the rate."""
    net.replies = [(None, [(0, b"ab"), (3, b"def")])]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, timeout=2, min_rate=1, min_rate_seconds=2.5)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} failed after 1 attempt: no byte for 2 s "
        f"(data.download.timeout) after 2 bytes; nothing kept in the cache ({target})")
    assert net.clock.now == 2


def test_without_a_minimum_rate_a_slow_body_completes(tmp_path, net, body):
    net.replies = [(len(body), [(5, body[i:i + 30]) for i in range(0, len(body), 30)])]
    assert fetch(tmp_path, min_rate=0, min_rate_seconds=1, timeout=10)[1] == sha(body)


_Pace, _Transient = download_module._Pace, download_module._Transient


def test_each_minimum_rate_window_must_bring_its_bytes():
    pace = _Pace(100, 2, now=10)  # 200 bytes in each 2 s from 10 s
    assert (pace.fails_at(0), pace.fails_at(199), pace.fails_at(200)) == (12, 12, 14)
    pace.check(11.99, 0)  # the window is still open
    pace.check(12, 200)  # exactly enough: the next window starts at 12 s, 200 bytes in
    assert (pace.fails_at(399), pace.fails_at(400)) == (14, 16)
    with pytest.raises(_Transient) as err:
        pace.check(14, 399)
    assert str(err.value) == ("slower than 100 bytes/s over 2 s (data.download.min_rate, "
                              "min_rate_seconds): 199 bytes in the last 2 s, 399 in all")
    with pytest.raises(_Transient, match=r": 199 bytes in the last 2 s, 199 in all$"):
        _Pace(100, 2, now=10).check(12, 199)  # at the window's end
    with pytest.raises(_Transient, match=r": 0 bytes in the last 2 s, 300 in all$"):
        _Pace(100, 2, now=0).check(5, 300)  # two windows closed: the second brought none
    none = _Pace(0, 2, now=0)  # no floor
    none.check(100, 0)
    assert none.fails_at(0) == float("inf")


RATE = {"min_rate": 100, "min_rate_seconds": 2, "timeout": 10}  # 200 bytes each 2 s


def _slow(received: int, window: int) -> str:
    """What a minimum rate failure says, as a pattern."""
    return re.escape(f"slower than 100 bytes/s over 2 s (data.download.min_rate, "
                     f"min_rate_seconds): {window:,} bytes in the last 2 s, {received:,} "
                     "in all;")


def test_a_trickle_fails_when_its_window_closes(tmp_path, net):
    net.replies = [(None, [(1, b"x" * 50)] * 10)]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, **RATE)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} failed after 1 attempt: slower than 100 bytes/s "
        "over 2 s (data.download.min_rate, min_rate_seconds): 100 bytes in the last 2 s, "
        f"100 in all; nothing kept in the cache ({target})")
    assert net.clock.now == 2


def test_each_window_must_bring_its_bytes_not_only_the_first(tmp_path, net):
    net.replies = [(None, [(1, b"x" * 100)] * 6 + [(1, b"x" * 99)] * 2 + [(1, b"x")] * 9)]
    with pytest.raises(SourceError, match=_slow(798, 198)):
        fetch(tmp_path, **RATE)
    assert net.clock.now == 8


@pytest.mark.parametrize("private", [False, True])
def test_a_stall_after_a_good_window_fails_when_the_next_window_closes(tmp_path, net,
                                                                       private):
    """A read waits no longer than the window it is in (``private``: where http.client
    keeps the socket from download, it waits its timeout, then the window is judged)."""
    net.private = private
    net.replies = [(None, [(1, b"x" * 250), (20, b"x")])]
    with pytest.raises(SourceError, match=_slow(250, 0)):
        fetch(tmp_path, **RATE)
    assert net.clock.now == (11 if private else 4)


def test_a_socket_that_wakes_a_little_early_is_judged_by_its_window(tmp_path, net):
    net.early = 0.01  # the read bound by the window's end (2 s) times out at 1.99 s
    net.replies = [(None, [(5, b"x")])]
    with pytest.raises(SourceError, match=_slow(0, 0)):
        fetch(tmp_path, **RATE)
    assert net.clock.now == 1.99


def test_a_read_just_before_a_window_closes_still_waits(tmp_path, net, body):
    """A window about to close bounds the read by a millisecond, never less: 0 would
    make the socket non-blocking and a read fail as if the host were gone."""
    net.replies = [(None, [(2 - 2**-11, b"x" * 100), (1, b"x" * 1000)])]
    with pytest.raises(SourceError, match=_slow(100, 100)):
        fetch(tmp_path, **RATE)
    assert net.clock.now == 2 - 2**-11 + 0.001


def test_a_download_above_the_minimum_rate_completes(tmp_path, net, body):
    chunks = [body[i:i + 30] for i in range(0, len(body), 30)]  # 240 bytes/s
    net.replies = [(len(body), [(0.125, chunk) for chunk in chunks])]
    assert fetch(tmp_path, **RATE)[1] == sha(body)


# --------------------------------------------------------------------------- defaults


def test_by_default_1024_bytes_a_second_over_15_s_and_3_retries(tmp_path, net):
    net.replies = [(None, [(15, b"x" * (1024 * 15 - 1))])]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        download_module.download(URL, tmp_path, sha256=None, max_bytes=10**7)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} failed after 4 attempts: slower than 1,024 "
        "bytes/s over 15 s (data.download.min_rate, min_rate_seconds): 15,359 bytes in the "
        f"last 15 s, 15,359 in all; nothing kept in the cache ({target})")
    assert net.clock.slept == [1, 2, 4]
    assert [timeout for _, _, timeout in net.requests] == [15] * 4  # each read's at most


def test_by_default_a_download_has_an_hour(tmp_path, net):
    net.replies = [(None, [(15, b"x" * 30_000)] * 241)]
    with pytest.raises(SourceError, match=r"did not finish within 3600 s \(data\.download\."
                                          r"deadline\): 7,200,000 bytes received;"):
        download_module.download(URL, tmp_path, sha256=None, max_bytes=10**8)
    assert net.clock.now == 3600


def test_a_full_disk_is_named_as_such_not_as_a_network_failure(tmp_path, net, body,
                                                                monkeypatch):
    class Full:
        def __init__(self, path, mode):
            self.file = open(path, mode)  # noqa: SIM115 - closed by __exit__

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(download_module, "open", Full, raising=False)
    net.replies = [whole(body)]
    target, _ = cache_paths(URL, tmp_path)
    with pytest.raises(SourceError) as err:
        fetch(tmp_path, retries=3)
    assert str(err.value) == (
        f"data.source: download of {SHOWN} cannot be written to the cache ({target}): "
        f"[Errno {errno.ENOSPC}] {os.strerror(errno.ENOSPC)}; nothing kept")
    assert len(net.requests) == 1 and files(tmp_path) == ["url.txt"]
