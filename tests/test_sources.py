"""data.source: folders, archives and URLs, good and evil, with nothing written outside."""

from __future__ import annotations

import functools
import http.server
import importlib
import io
import json
import os
import re
import shutil
import socket
import tarfile
import threading
import time
from pathlib import Path

import pytest
from helpers import GOOD, PNG, link, make_tar, make_zip, params

from pipeline.core.hashing import file_digest
from pipeline.core.params import DownloadParams, ParamsError
from pipeline.data import sources
from pipeline.data.source_errors import DataSourceError, SourceError
from pipeline.data.sources import archives, layout, resolve_source
from pipeline.evaluation import modelcard

download_module = importlib.import_module("pipeline.data.sources.download")  # the package
# re-exports its download() function under the module's name

CAPS = {"max_bytes": 10_000_000, "max_files": 1000}


@pytest.fixture
def sentinel(tmp_path) -> Path:
    """A file outside the cache that evil archives aim at; it must stay as it is."""
    path = tmp_path / "outside" / "sentinel.txt"
    path.parent.mkdir()
    path.write_text("original")
    return path


def assert_nothing_extracted(cache: Path, sentinel: Path) -> None:
    assert sentinel.read_text() == "original"
    assert sorted(p.name for p in sentinel.parent.iterdir()) == ["sentinel.txt"]
    extracted = cache / "extracted"
    assert not extracted.exists() or not any(extracted.iterdir()), list(extracted.rglob("*"))


# --------------------------------------------------------------------------- folders


def test_folder_is_used_where_it_is(tmp_path):
    (tmp_path / "data" / "cat").mkdir(parents=True)
    info = resolve_source(str(tmp_path / "data"), tmp_path / "cache", **CAPS)
    assert (info.root, info.kind, info.sha256, info.presplit) == (
        tmp_path / "data", "folder", None, None)
    assert not (tmp_path / "cache").exists()


def test_missing_path_is_named(tmp_path):
    missing = str(tmp_path / "no such folder")
    with pytest.raises(SourceError, match="no such folder.*does not exist") as err:
        resolve_source(missing, tmp_path / "cache", **CAPS)
    assert isinstance(err.value, DataSourceError)  # stage.run prints it as one line


def test_file_that_is_not_an_archive(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="notes.txt.*not a zip or tar archive"):
        resolve_source(str(tmp_path / "notes.txt"), tmp_path / "cache", **CAPS)


def test_presplit_folders_are_found(tmp_path):
    for split in ("train", "Validation", "test"):
        (tmp_path / "data" / split / "cat").mkdir(parents=True)
    info = resolve_source(str(tmp_path / "data"), tmp_path / "cache", **CAPS)
    assert info.presplit == {"train": tmp_path / "data/train",
                             "val": tmp_path / "data/Validation", "test": tmp_path / "data/test"}
    (tmp_path / "data" / "val").mkdir()
    with pytest.raises(SourceError, match="both val/ and Validation/"):
        layout.find_presplit(tmp_path / "data")


def test_train_with_val_or_test_is_a_presplit_and_val_is_the_test_split(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
    assert layout.find_presplit(tmp_path) == {"train": tmp_path / "train",
                                              "test": tmp_path / "test"}
    (tmp_path / "test").rename(tmp_path / "val")  # ImageNet, Imagenette: val/ is held out
    assert layout.find_presplit(tmp_path) == {"train": tmp_path / "train",
                                              "test": tmp_path / "val"}
    (tmp_path / "train").rename(tmp_path / "other")
    assert layout.find_presplit(tmp_path) is None  # no train/: not a pre-split set


def test_pin_on_a_folder_is_an_error(tmp_path):
    with pytest.raises(SourceError, match="archives only"):
        resolve_source(str(tmp_path), tmp_path / "cache", sha256="0" * 64, **CAPS)


# --------------------------------------------------------------------------- good archives


@pytest.mark.parametrize("name", ["data.zip", "data.tar", "data.tar.gz", "data.tgz"])
def test_good_archive_with_a_wrapping_folder(tmp_path, name):
    files = {f"flower_photos/{k}": v for k, v in GOOD.items()}
    files["flower_photos/LICENSE.txt"] = b"CC-BY"
    files["__MACOSX/flower_photos/._x"] = b"junk"
    archive = tmp_path / name
    if name.endswith(".zip"):
        make_zip(archive, files)
    else:
        make_tar(archive, files, "w" if name.endswith(".tar") else "w:gz")
    cache = tmp_path / "cache"
    info = resolve_source(str(archive), cache, **CAPS)
    assert info.kind == "archive" and info.archive == archive
    assert info.root.name == "flower_photos"
    assert info.root.parent == cache / "extracted" / info.sha256[:16] / archives.FILES
    assert sorted(p.name for p in info.root.iterdir()) == ["LICENSE.txt", "cat", "dog"]
    assert (info.root / "cat" / "1.png").read_bytes() == PNG
    assert (info.root.parent.parent / archives.MARKER).is_file()
    assert not [p for p in (cache / "extracted").iterdir() if p.name.startswith(".")]


def test_archive_without_wrapping_folder_and_reuse(tmp_path):
    archive = make_tar(tmp_path / "d.tgz", GOOD)
    cache = tmp_path / "cache"
    first = resolve_source(str(archive), cache, **CAPS)
    assert first.root == cache / "extracted" / first.sha256[:16] / archives.FILES
    assert sorted(p.name for p in first.root.iterdir()) == ["cat", "dog"]
    (first.root / "cat" / "mark").write_text("kept")  # a second resolve must not re-extract
    again = resolve_source(str(archive), cache, **CAPS)
    assert again == first and (again.root / "cat" / "mark").read_text() == "kept"


def test_incomplete_extraction_is_redone(tmp_path):
    archive = make_zip(tmp_path / "d.zip", GOOD)
    cache = tmp_path / "cache"
    info = resolve_source(str(archive), cache, **CAPS)
    (info.root.parent / archives.MARKER).unlink()  # as if a run died before the marker
    (info.root / "cat" / "stale").write_text("x")
    info = resolve_source(str(archive), cache, **CAPS)
    assert not (info.root / "cat" / "stale").exists()
    assert (info.root.parent / archives.MARKER).is_file()


def _extract_at(archive: str, cache: str, barrier, contended) -> tuple[str, int, bool, bool]:
    """One process of the race below: (root, entries, waited for the other's lock,
    extracted). The lock is watched: a process finding it taken says so (``contended``)
    before waiting, and the one holding it extracts only once the other is waiting, so
    the two really meet at the lock, however late one process starts."""
    from filelock import FileLock, Timeout

    seen = {"waited": False, "extracted": False}

    class WatchedLock(FileLock):
        def acquire(self, *args, **kwargs):
            try:
                return super().acquire(timeout=0)
            except Timeout:
                seen["waited"] = True
                contended.set()
                return super().acquire(*args, **kwargs)

    extract = archives._extract

    def extract_when_met(*args, **kwargs):
        contended.wait(timeout=30)  # the other process is at the lock (or never came)
        seen["extracted"] = True
        return extract(*args, **kwargs)

    archives.FileLock, archives._extract = WatchedLock, extract_when_met
    barrier.wait(timeout=120)  # both imported
    info = resolve_source(archive, Path(cache), **CAPS)
    return str(info.root), len(list(info.root.rglob("*"))), seen["waited"], seen["extracted"]


def test_two_concurrent_extractions_of_one_archive_agree(tmp_path):
    """Two queued experiments resolving one archive at once (`dvc queue start --jobs 2`):
    one extracts while the other waits at the lock, then both get the same complete tree,
    extracted once, and no temporary folder is left."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    big = {f"{c}/{i}.png": PNG for c in ("cat", "dog") for i in range(200)}
    archive = make_zip(tmp_path / "d.zip", big)
    cache = tmp_path / "cache"
    spawn = multiprocessing.get_context("spawn")
    with spawn.Manager() as manager, ProcessPoolExecutor(2, mp_context=spawn) as pool:
        barrier, contended = manager.Barrier(2), manager.Event()
        runs = [pool.submit(_extract_at, str(archive), str(cache), barrier, contended)
                for _ in range(2)]
        (root_a, n_a, waited_a, did_a), (root_b, n_b, waited_b, did_b) = (
            r.result(timeout=180) for r in runs)
    assert sorted([waited_a, waited_b]) == [False, True], "the race did not happen"
    assert sorted([did_a, did_b]) == [False, True]  # extracted once...
    assert did_a != waited_a  # ...by the one that did not wait
    assert root_a == root_b and n_a == n_b == 2 + 400
    extracted = cache / "extracted"
    assert [p.name for p in extracted.iterdir()] == [Path(root_a).parent.name]
    assert (Path(root_a).parent / archives.MARKER).is_file()


def test_archive_of_a_folder_made_with_tar_dot(tmp_path):
    """`tar -C data -czf d.tgz .` stores ./ and ./cat/1.png: the root entry is fine."""
    files = {f"./{k}": v for k, v in GOOD.items()}
    archive = make_tar(tmp_path / "d.tgz", files, special=[link("./", "", tarfile.DIRTYPE)])
    info = resolve_source(str(archive), tmp_path / "cache", **CAPS)
    assert sorted(p.name for p in info.root.iterdir()) == ["cat", "dog"]
    assert oct(info.root.parent.stat().st_mode & 0o777) == "0o755"


def test_single_class_in_a_wrapper_stops_at_the_wrapper(tmp_path):
    archive = make_zip(tmp_path / "d.zip", {"wrap/cat/1.png": PNG, "wrap/cat/2.png": PNG})
    info = resolve_source(str(archive), tmp_path / "cache", **CAPS)
    assert info.root.name == "wrap"


def test_presplit_archive(tmp_path):
    files = {f"ds/{s}/cat/1.png": PNG for s in ("train", "val", "test")}
    info = resolve_source(str(make_tar(tmp_path / "d.tgz", files)), tmp_path / "cache", **CAPS)
    assert info.root.name == "ds" and set(info.presplit) == {"train", "val", "test"}


def test_pinned_sha256_of_a_local_archive(tmp_path):
    archive = make_zip(tmp_path / "d.zip", GOOD)
    good = file_digest(archive)
    assert resolve_source(str(archive), tmp_path / "c", sha256=good.upper(), **CAPS).sha256 == good
    with pytest.raises(SourceError, match=f"has sha256 {good}, but {'a' * 64} is pinned"):
        resolve_source(str(archive), tmp_path / "c2", sha256="a" * 64, **CAPS)
    assert not (tmp_path / "c2").exists()
    with pytest.raises(SourceError, match="not a sha256"):
        resolve_source(str(archive), tmp_path / "c3", sha256="abc", **CAPS)


# --------------------------------------------------------------------------- evil archives

EVIL = [
    ("dotdot.zip", lambda p: make_zip(p, {**GOOD, "../outside/sentinel.txt": b"pwned"}),
     "'../outside/sentinel.txt' rejected: '..' path component"),
    ("dotdot.tgz", lambda p: make_tar(p, {"cat/../../outside/sentinel.txt": b"pwned"}),
     "'cat/../../outside/sentinel.txt' rejected: '..' path component"),
    ("abs.zip", lambda p: make_zip(p, {**GOOD, "/tmp/abs.txt": b"x"}),
     "'/tmp/abs.txt' rejected: absolute path"),
    ("abs.tar", lambda p: make_tar(p, {"/tmp/abs.txt": b"x"}, "w"),
     "'/tmp/abs.txt' rejected: absolute path"),
    ("drive.zip", lambda p: make_zip(p, {"C:\\Windows\\x.png": b"x"}),
     r"rejected: absolute path"),
    ("backslash.zip", lambda p: make_zip(p, {"cat\\..\\..\\x.png": b"x"}),
     "rejected: '..' path component"),
    ("symlink.tgz", lambda p: make_tar(p, GOOD, special=[link("cat/pw.png", "/etc/passwd")]),
     "'cat/pw.png' rejected: symbolic link to '/etc/passwd'"),
    ("symlink.zip", lambda p: make_zip(p, GOOD, links={"cat/pw.png": "/etc/passwd"}),
     "'cat/pw.png' rejected: symbolic link"),
    ("hardlink.tgz", lambda p: make_tar(p, GOOD, special=[
        link("cat/h.png", "../../outside/sentinel.txt", tarfile.LNKTYPE)]),
     "'cat/h.png' rejected: hard link to '../../outside/sentinel.txt'"),
    ("inside_link.tgz", lambda p: make_tar(p, GOOD, special=[link("cat/3.png", "1.png")]),
     "'cat/3.png' rejected: symbolic link to '1.png'"),
    ("device.tgz", lambda p: make_tar(p, GOOD, special=[link("cat/dev", "", tarfile.CHRTYPE)]),
     "'cat/dev' rejected: device or FIFO file"),
    ("dup.zip", lambda p: make_zip(p, {**GOOD, "./cat/1.png": b"other"}),
     "'./cat/1.png' rejected: duplicate path"),
]


@pytest.mark.parametrize("name, build, message", EVIL, ids=[e[0] for e in EVIL])
def test_evil_archive_is_rejected_and_nothing_is_written(tmp_path, sentinel, name, build,
                                                         message):
    archive = build(tmp_path / name)
    cache = tmp_path / "cache"
    with pytest.raises(SourceError, match=re.escape(message)) as err:
        resolve_source(str(archive), cache, **CAPS)
    assert name in str(err.value)  # the archive is named too
    assert_nothing_extracted(cache, sentinel)


def test_too_many_files(tmp_path, sentinel):
    archive = make_zip(tmp_path / "many.zip", {f"cat/{i}.png": PNG for i in range(20)})
    with pytest.raises(SourceError, match=r"many\.zip: more than 10 entries \(max_files\)"):
        resolve_source(str(archive), tmp_path / "cache", max_bytes=10**7, max_files=10)
    assert_nothing_extracted(tmp_path / "cache", sentinel)


def test_too_many_bytes(tmp_path, sentinel):
    archive = make_tar(tmp_path / "big.tgz", {"cat/big.png": b"\0" * 100_000})  # compresses
    with pytest.raises(SourceError, match=r"big\.tgz: 100,000 bytes once extracted, more "
                                          r"than the 50,000 allowed \(max_bytes\)"):
        resolve_source(str(archive), tmp_path / "cache", max_bytes=50_000, max_files=10)
    assert_nothing_extracted(tmp_path / "cache", sentinel)


def test_bytes_are_counted_while_writing_too(tmp_path):
    """A header that understates a size is caught by the count of bytes written."""
    budget = archives._Budget(tmp_path / "lying.zip", max_bytes=1000, max_files=5)
    with pytest.raises(SourceError, match=r"'cat/x.png' rejected: extraction exceeded 1,000"):
        budget.copy(io.BytesIO(b"\0" * 5000), io.BytesIO(), "cat/x.png")


def test_corrupt_archive(tmp_path, sentinel):
    good = make_tar(tmp_path / "ok.tgz", {"cat/x.png": b"\1" * 50_000}).read_bytes()
    (tmp_path / "cut.tgz").write_bytes(good[: len(good) // 2])
    with pytest.raises(SourceError, match=r"cut\.tgz"):
        resolve_source(str(tmp_path / "cut.tgz"), tmp_path / "cache", **CAPS)
    assert_nothing_extracted(tmp_path / "cache", sentinel)


# --------------------------------------------------------------------------- URLs


@pytest.fixture
def server(tmp_path, monkeypatch):
    """An http.server on 127.0.0.1 serving tmp_path/www; yields (base URL, request log)."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    www = tmp_path / "www"
    www.mkdir()
    log: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            log.append(self.path)

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www, log
    httpd.shutdown()
    httpd.server_close()


def test_url_is_downloaded_once(tmp_path, server):
    base, www, log = server
    make_tar(www / "flowers.tgz", {f"flower_photos/{k}": v for k, v in GOOD.items()})
    cache = tmp_path / "cache"
    info = resolve_source(f"{base}/flowers.tgz", cache, **CAPS)
    assert info.kind == "url" and info.url == f"{base}/flowers.tgz"
    assert info.sha256 == file_digest(www / "flowers.tgz")
    assert info.archive.read_bytes() == (www / "flowers.tgz").read_bytes()
    assert info.root.name == "flower_photos" and (info.root / "dog" / "1.png").is_file()
    assert log == ["/flowers.tgz"]
    again = resolve_source(f"{base}/flowers.tgz", cache, sha256=info.sha256, **CAPS)
    assert again == info and log == ["/flowers.tgz"]  # no second request
    assert not [p for p in info.archive.parent.iterdir() if p.name.startswith(".")]


def test_pinned_sha_mismatch_discards_the_download(tmp_path, server):
    base, www, log = server
    make_zip(www / "d.zip", GOOD)
    cache = tmp_path / "cache"
    with pytest.raises(SourceError, match=r"download of .*/d\.zip has sha256 [0-9a-f]{64}, "
                                          r"but 0{64} is pinned; the file is discarded"):
        resolve_source(f"{base}/d.zip", cache, sha256="0" * 64, **CAPS)
    assert [p.name for p in (cache / "downloads").rglob("*") if p.is_file()] == ["url.txt"]
    assert not (cache / "extracted").exists()


def test_url_without_archive_suffix_is_sniffed(tmp_path, server):
    base, www, _ = server
    make_zip(www / "download", GOOD)
    info = resolve_source(f"{base}/download?version=2", tmp_path / "cache", **CAPS)
    assert sorted(p.name for p in info.root.iterdir()) == ["cat", "dog"]


def test_url_with_spaces_and_accents_is_requested_escaped(tmp_path, server):
    """As a browser's address bar shows it: http.client alone refuses such a URL."""
    base, www, log = server
    (www / "my data").mkdir()
    make_zip(www / "my data" / "caf\u00e9.zip", GOOD)
    info = resolve_source(f"{base}/my data/caf\u00e9.zip", tmp_path / "cache", **CAPS)
    assert log == ["/my%20data/caf%C3%A9.zip"] and info.archive.name == "caf_.zip"
    assert sorted(p.name for p in info.root.iterdir()) == ["cat", "dog"]


def test_url_errors(tmp_path, server):
    base, www, _ = server
    with pytest.raises(SourceError, match=r"download of .*/missing\.zip failed: HTTP 404"):
        resolve_source(f"{base}/missing.zip", tmp_path / "cache", **CAPS)
    (www / "big.zip").write_bytes(b"\0" * 5000)
    with pytest.raises(SourceError, match=r"big\.zip is 5,000 bytes, more than the 1,000"):
        resolve_source(f"{base}/big.zip", tmp_path / "cache", max_bytes=1000, max_files=10)
    assert not [p for p in (tmp_path / "cache").rglob("*.zip*")]
    with pytest.raises(SourceError, match="only http"):
        resolve_source("ftp://example.org/d.zip", tmp_path / "cache", **CAPS)


def test_unreachable_url_gives_an_offline_hint(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    closed = f"http://127.0.0.1:{port}/d.zip"
    with pytest.raises(SourceError, match=r"cannot download .*set data\.source to its local"):
        resolve_source(closed, tmp_path / "cache", **CAPS)


# --------------------------------------------------------------------------- later stages


def test_split_folders_finds_a_partial_set(tmp_path):
    for split in ("Train", "test", "cat"):
        (tmp_path / split).mkdir()
    assert layout.split_folders(tmp_path) == {"train": tmp_path / "Train",
                                               "test": tmp_path / "test"}
    assert layout.split_folders(tmp_path / "missing") == {}


def test_presplit_folders_by_mode(tmp_path):
    for split in ("train", "validation", "test"):
        (tmp_path / split / "cat").mkdir(parents=True)
    folders = {"train": tmp_path / "train", "val": tmp_path / "validation",
               "test": tmp_path / "test"}
    assert layout.presplit_folders(tmp_path, "auto") == (folders, True)
    assert layout.presplit_folders(tmp_path, "use") == (folders, True)
    assert layout.presplit_folders(tmp_path, "ignore") == (folders, False)  # pooled
    shutil.rmtree(tmp_path / "validation")
    partial = {"train": tmp_path / "train", "test": tmp_path / "test"}
    assert layout.presplit_folders(tmp_path, "auto") == (partial, True)  # val carved
    assert layout.presplit_folders(tmp_path, "ignore") == (partial, False)
    shutil.rmtree(tmp_path / "train")
    with pytest.raises(SourceError, match=r"split folder\(s\) test/ but no train/.*"
                                          r"data\.presplit: ignore"):
        layout.presplit_folders(tmp_path, "auto")


def _data(source: str, cache: Path):
    """params.yaml's ``data`` section with this source and cache."""
    return params({"data.source": source, "data.cache": str(cache)}).data


def test_data_root_uses_the_record_then_re_resolves_without_network(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    archive = make_tar(tmp_path / "d.tgz", {f"flowers/{k}": v for k, v in GOOD.items()})
    data = _data(str(archive), Path(".cache/sources"))
    info = resolve_source(str(archive), Path(".cache/sources"), **CAPS)
    record = sources.record(info, str(archive), presplit=False)
    assert record["root"] == f".cache/sources/extracted/{info.sha256[:16]}/files/flowers"
    assert record["kind"] == "archive" and record["sha256"] == info.sha256
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "source.json").write_text(json.dumps(record))
    assert sources.data_root(data) == Path(record["root"])
    # The extraction is gone (a new clone, a cleaned cache): extracted again, same place.
    shutil.rmtree(tmp_path / ".cache")
    assert sources.data_root(data).resolve() == (tmp_path / record["root"]).resolve()
    assert (tmp_path / record["root"] / "cat" / "1.png").read_bytes() == PNG
    # A record for another source is not used.
    other = _data(str(tmp_path / "elsewhere"), Path(".cache/sources"))
    with pytest.raises(SourceError, match="elsewhere.*does not exist"):
        sources.data_root(other)


def test_data_root_of_a_folder_is_the_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    assert sources.data_root(_data("photos", Path("c"))) == Path("photos")
    info = resolve_source(str(tmp_path / "photos"), Path("c"), **CAPS)
    assert sources.record(info, "x", False)["root"] == "photos"  # inside the project
    above = str(tmp_path.parent)  # outside the project: recorded as it is
    outside = sources.record(resolve_source(above, Path("c"), **CAPS), above, False)
    assert outside["root"] == above


def test_url_not_downloaded_is_an_error_not_a_download(tmp_path, no_network):
    data = _data("https://example.org/flowers.tgz", tmp_path / "cache")
    with pytest.raises(SourceError, match=r"flowers\.tgz is not in the download cache.*"
                                          r"dvc repro prepare"):
        sources.data_root(data, tmp_path / "no_record.json")
    assert no_network == []  # not even a DNS lookup


# --------------------------------------------------------------------------- whole or nothing


@pytest.fixture
def evil_server(monkeypatch):
    """A loopback server whose behaviour per path is set by the test: yields (base URL,
    routes, request log). A route is (body, mode): mode "ok", "truncate" (the full
    Content-Length, half the body, then close), "longer" (declares 100 bytes more),
    "shorter" (declares half), "stall" (one byte every 2 s, at most 30), "trickle" (one
    byte every 0.1 s, at most 50), "paced" (the whole body, 1,000 bytes every 0.1 s),
    "fail_once" (503, then ok) or "404"."""
    monkeypatch.setattr(download_module, "BACKOFF", 0.05)
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    routes: dict[str, tuple[bytes, str]] = {}
    log: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            log.append(self.path)
            body, mode = routes[self.path]
            if mode == "404" or (mode == "fail_once" and log.count(self.path) == 1):
                self.send_error(int(mode) if mode == "404" else 503)
                return
            declared = {"longer": len(body) + 100, "shorter": len(body) // 2}.get(mode,
                                                                                    len(body))
            self.send_response(200)
            self.send_header("Content-Length", str(declared))
            self.end_headers()
            try:
                if mode == "truncate":
                    self.wfile.write(body[: len(body) // 2])
                elif mode in ("stall", "trickle", "paced"):
                    step, size, most = {"stall": (2, 1, 30), "trickle": (0.1, 1, 50),
                                        "paced": (0.1, 1000, len(body))}[mode]
                    for at in range(0, min(most, len(body)), size):  # bounded: 60 s at most
                        self.wfile.write(body[at:at + size])
                        self.wfile.flush()
                        time.sleep(step)
                else:
                    self.wfile.write(body[:declared])
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should
            self.close_connection = True

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes, log
    httpd.shutdown()
    httpd.server_close()


THREE = {f"{c}/{i}.png": PNG + bytes([i]) for c in ("cat", "dog", "owl") for i in range(32)}
FAST = {"deadline": 20, "timeout": 5, "retries": 1, "min_rate": 1024, "min_rate_seconds": 15}


def _tar_bytes(tmp_path: Path, mode: str = "w") -> bytes:
    return make_tar(tmp_path / f"src.{mode}.tar", THREE, mode).read_bytes()


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file() and p.name != "url.txt")


def _download(url: str, cache: Path, **settings):
    return resolve_source(url, cache, download_settings=DownloadParams(**(FAST | settings)),
                          **CAPS)


def test_truncated_download_is_never_used_nor_kept(tmp_path, evil_server):
    base, routes, log = evil_server
    body = _tar_bytes(tmp_path)
    routes["/d.tar"] = (body, "truncate")
    cache = tmp_path / "cache"
    with pytest.raises(SourceError) as err:
        _download(f"{base}/d.tar", cache)
    message = str(err.value)
    assert f"{base}/d.tar" in message and "after 2 attempts" in message  # one retry
    assert f"received {len(body) // 2:,} bytes of the {len(body):,} declared" in message
    assert str(cache / "downloads") in message and "nothing kept" in message
    assert "\n" not in message and _cache_files(cache) == [] and len(log) == 2
    routes["/d.tar"] = (body, "ok")  # the server is fixed: the whole data comes back
    info = _download(f"{base}/d.tar", cache)
    assert sorted(p.name for p in info.root.iterdir()) == ["cat", "dog", "owl"]
    assert len(list(info.root.rglob("*.png"))) == 96


def test_length_lies_are_caught(tmp_path, evil_server):
    base, routes, _ = evil_server
    body = _tar_bytes(tmp_path)
    routes["/long.tar"] = (body, "longer")
    routes["/short.tar"] = (body, "shorter")  # http.client stops at the declared length
    cache = tmp_path / "cache"
    with pytest.raises(SourceError, match=rf"received {len(body):,} bytes of the "
                                          rf"{len(body) + 100:,} declared"):
        _download(f"{base}/long.tar", cache, retries=0)
    with pytest.raises(SourceError, match=r"short\.tar \(.* bytes, as declared\) is not a whole "
                                          r"archive: .*truncated.*nothing kept in the cache"):
        _download(f"{base}/short.tar", cache)
    assert _cache_files(cache) == []


def test_a_stalling_server_fails_within_the_deadline(tmp_path, evil_server):
    base, routes, _ = evil_server
    routes["/slow.tgz"] = (make_tar(tmp_path / "s.tgz", GOOD).read_bytes(), "stall")
    start = time.monotonic()
    with pytest.raises(SourceError, match=r"slow\.tgz did not finish within 3 s "
                                          r"\(data\.download\.deadline\): [12] of \d+ bytes"):
        _download(f"{base}/slow.tgz", tmp_path / "cache", deadline=3)
    assert time.monotonic() - start < 3.5
    assert _cache_files(tmp_path / "cache") == []


def test_a_trickle_fails_by_the_minimum_rate_within_its_window(tmp_path, evil_server,
                                                               monkeypatch):
    """curl's --speed-limit/--speed-time: a byte every 0.1 s is far under 100 bytes/s, so
    each attempt fails when its first 1 s window closes, not at the 20 s deadline."""
    base, routes, log = evil_server
    body = make_tar(tmp_path / "t.tgz", GOOD).read_bytes()
    routes["/trickle.tgz"] = (body, "trickle")
    routes["/stall.tgz"] = (body, "stall")  # a byte, then none for 2 s: the read times out
    routes["/private.tgz"] = (body, "trickle")
    cache = tmp_path / "cache"
    for name, wait in (("trickle", 1), ("stall", 0.5), ("private", 1)):
        if name == "private":  # no hold on the socket's timeout: checked after each read
            monkeypatch.setattr(download_module, "_read_timeout", lambda response, seconds: None)
        start = time.monotonic()
        with pytest.raises(SourceError) as err:
            _download(f"{base}/{name}.tgz", cache, min_rate=100, min_rate_seconds=wait)
        took = time.monotonic() - start
        message = str(err.value)
        assert f"{base}/{name}.tgz failed after 2 attempts: slower than 100 bytes/s over " \
               f"{wait:g} s (data.download.min_rate, min_rate_seconds)" in message, message
        assert "nothing kept in the cache" in message and "\n" not in message
        assert 2 * wait <= took < 2 * wait + 1.5, took  # two windows and a 0.05 s back-off
    assert log == [f"/{name}.tgz" for name in ("trickle", "stall", "private") for _ in "12"]
    assert _cache_files(cache) == []


def test_a_slow_download_above_the_minimum_rate_completes(tmp_path, evil_server):
    base, routes, _ = evil_server
    body = make_tar(tmp_path / "p.tar", GOOD, "w").read_bytes()  # 10 KiB at 10 kB/s: ~1 s
    routes["/paced.tar"] = (body, "paced")
    info = _download(f"{base}/paced.tar", tmp_path / "cache", min_rate=4000,
                     min_rate_seconds=0.3)
    assert info.archive.read_bytes() == body
    with pytest.raises(SourceError, match=r"slower than 40,000 bytes/s over 0\.3 s"):
        _download(f"{base}/paced.tar", tmp_path / "other", min_rate=40_000,
                  min_rate_seconds=0.3, retries=0)


@pytest.mark.parametrize(("key", "value"), [("min_rate", -1), ("min_rate_seconds", 0),
                                            ("min_rate_seconds", "fast")])
def test_minimum_rate_settings_are_checked(key, value):
    with pytest.raises(ParamsError, match=rf"data\.download\.{key}\b"):
        params({f"data.download.{key}": value})


def test_a_503_is_retried(tmp_path, evil_server, capsys):
    base, routes, log = evil_server
    routes["/d.tgz"] = (make_tar(tmp_path / "d.tgz", GOOD).read_bytes(), "fail_once")
    info = _download(f"{base}/d.tgz", tmp_path / "cache")
    assert log == ["/d.tgz", "/d.tgz"] and (info.root / "dog" / "1.png").read_bytes() == PNG
    assert "HTTP 503" in capsys.readouterr().err


def test_a_4xx_is_not_retried(tmp_path, evil_server):
    base, routes, log = evil_server
    routes["/missing.tgz"] = (b"", "404")
    with pytest.raises(SourceError, match="HTTP 404"):
        _download(f"{base}/missing.tgz", tmp_path / "cache")
    assert log == ["/missing.tgz"]


def test_a_damaged_cached_download_is_not_reused(tmp_path, evil_server):
    base, routes, log = evil_server
    good = make_tar(tmp_path / "d.tgz", GOOD).read_bytes()
    routes["/d.tgz"] = (good, "ok")
    cache = tmp_path / "cache"
    first = _download(f"{base}/d.tgz", cache)
    extraction = first.root.parent
    # Cut short in the cache after it was recorded: discarded with its extraction.
    first.archive.write_bytes(good[: len(good) // 2])
    again = _download(f"{base}/d.tgz", cache)
    assert again.archive.read_bytes() == good and len(log) == 2
    assert (again.root / "cat" / "1.png").read_bytes() == PNG
    # A truncated .tar.gz cached before records were kept: checked, discarded, fetched again.
    (first.archive.parent / download_module.RECORD).unlink()
    first.archive.write_bytes(good[: len(good) // 2])
    shutil.rmtree(extraction)
    third = _download(f"{base}/d.tgz", cache)
    assert third.archive.read_bytes() == good and len(log) == 3
    assert json.loads((first.archive.parent / download_module.RECORD).read_text()) == {
        "url": f"{base}/d.tgz", "bytes": len(good), "sha256": third.sha256}


def test_a_tar_cut_at_a_member_boundary_is_refused(tmp_path, sentinel):
    whole = _tar_bytes(tmp_path)
    with tarfile.open(tmp_path / "src.w.tar") as tf:
        cut = tf.getmembers()[64].offset  # 64 of the 96 images, as a cut-short download
    (tmp_path / "cut.tar").write_bytes(whole[:cut])
    with pytest.raises(SourceError, match=r"cut\.tar is truncated: no end-of-archive block"):
        resolve_source(str(tmp_path / "cut.tar"), tmp_path / "cache", **CAPS)
    assert_nothing_extracted(tmp_path / "cache", sentinel)
    zipped = make_zip(tmp_path / "z.zip", THREE).read_bytes()
    (tmp_path / "cut.zip").write_bytes(zipped[:-30])  # the central directory's end is gone
    with pytest.raises(SourceError, match=r"cut\.zip is corrupt or truncated"):
        resolve_source(str(tmp_path / "cut.zip"), tmp_path / "cache", **CAPS)


# --------------------------------------------------------------------------- names


def test_non_utf8_and_over_long_member_names_are_named(tmp_path, sentinel):
    latin = make_tar(tmp_path / "latin.tar", {**GOOD, "cat/caf\udce9.png": PNG}, "w")
    with pytest.raises(SourceError, match=re.escape(r"member b'cat/caf\xe9.png' rejected: "
                                                    "the name is not UTF-8")):
        resolve_source(str(latin), tmp_path / "cache", **CAPS)
    long = make_zip(tmp_path / "long.zip", {**GOOD, "cat/" + "x" * 300 + ".png": PNG})
    with pytest.raises(SourceError, match=r"long\.zip: member 'cat/x{300}\.png' rejected: a "
                                          r"path component is 304 bytes long"):
        resolve_source(str(long), tmp_path / "cache", **CAPS)
    flagged = make_zip(tmp_path / "flag.zip", {"cat/ab.png": PNG})
    raw = flagged.read_bytes()  # the name flagged UTF-8 (bit 11) but Latin-1 bytes
    flagged.write_bytes(raw.replace(b"cat/ab.png", b"cat/\xe9b.png").replace(
        b"\x14\x00\x00\x00\x00\x00", b"\x14\x00\x00\x08\x00\x00"))
    with pytest.raises(SourceError, match=re.escape(r"member b'cat/\xe9b.png' rejected")):
        resolve_source(str(flagged), tmp_path / "cache", **CAPS)
    assert_nothing_extracted(tmp_path / "cache", sentinel)


def test_a_latin1_file_name_in_a_folder_is_named(tmp_path):
    from pipeline.data import scan

    for name in ("cat/1.png", "dog/1.png"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(PNG)
    os.close(os.open(os.fsencode(tmp_path) + b"/dog/caf\xe9.png", os.O_CREAT | os.O_WRONLY))
    with pytest.raises(DataSourceError, match=re.escape(r"b'dog/caf\xe9.png'") + ".*not UTF-8"):
        scan.scan(tmp_path)


# --------------------------------------------------------------------------- credentials

USERS = {"alice": "s3cret", "bob": "hunter2"}
SECRETS = ("s3cret", "hunter2", "n3w", "wr0ng", "t0ken")


@pytest.fixture
def auth_server(tmp_path, monkeypatch):
    """Two loopback servers: the first serves tmp_path/www to USERS only (HTTP Basic),
    redirects /here to /d.tgz and /away to the second; each logs (server, path, user or
    None). Yields (first host:port, second host:port, www, log)."""
    import base64

    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    www = tmp_path / "www"
    www.mkdir()
    log: list[tuple[str, str, str | None]] = []
    servers: list[http.server.ThreadingHTTPServer] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002 - the base class's signature
            pass

        def do_GET(self):  # noqa: N802 - http.server's name
            given = self.headers.get("Authorization", "")
            user, _, password = base64.b64decode(given.removeprefix("Basic ")).decode().partition(
                ":") if given.startswith("Basic ") else (None, "", "")
            which = "first" if self.server is servers[0] else "second"
            log.append((which, self.path, user))
            if self.path in ("/here", "/away"):
                place = {"/here": "/d.tgz",
                         "/away": f"http://127.0.0.1:{servers[1].server_address[1]}/d.tgz"}
                self.send_response(302)
                self.send_header("Location", place[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif which == "first" and USERS.get(user or "") != password:
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="data"')
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                super().do_GET()

    for _ in range(2):
        httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
    yield (*(f"127.0.0.1:{h.server_address[1]}" for h in servers), www, log)
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def _no_secret_in(cache: Path, *texts: str) -> None:
    """No password in any name or byte under ``cache``, nor in ``texts``."""
    for path in [cache, *cache.rglob("*")]:
        assert not [s for s in SECRETS if s in str(path)], path
        if path.is_file():
            assert not [s for s in SECRETS if s.encode() in path.read_bytes()], path
    for text in texts:
        assert not [s for s in SECRETS if s in text], text


def test_credentials_in_a_url_are_sent_but_never_shown_nor_stored(tmp_path, auth_server,
                                                                 capsys, monkeypatch):
    host, _, www, log = auth_server
    make_tar(www / "d.tgz", GOOD)
    cache = tmp_path / "cache"
    url = f"http://alice:s3cret@{host}/d.tgz"
    info = resolve_source(url, cache, **CAPS)
    assert log == [("first", "/d.tgz", "alice")] and (info.root / "cat" / "1.png").is_file()
    record = sources.record(info, url, presplit=False)
    assert record["source"] == f"http://alice:***@{host}/d.tgz"
    assert json.loads((info.archive.parent / download_module.RECORD).read_text())["url"] == \
        record["source"]
    # The record is what the later stages match data.source against: used, no request.
    monkeypatch.chdir(tmp_path)
    Path("source.json").write_text(json.dumps(record))
    assert sources.data_root(_data(url, cache), "source.json") == Path(record["root"])
    # The cache is keyed without the password: a new one reuses the download, another
    # user has their own, a wrong password is a 401 that does not show it.
    again = resolve_source(f"http://alice:n3w@{host}/d.tgz", cache, **CAPS)
    assert again.archive == info.archive and len(log) == 1
    bob = resolve_source(f"http://bob:hunter2@{host}/d.tgz", cache, **CAPS)
    assert bob.archive != info.archive and log[-1] == ("first", "/d.tgz", "bob")
    with pytest.raises(SourceError) as err:
        resolve_source(f"http://alice:wr0ng@{host}/x.tgz", cache, **CAPS)
    assert str(err.value).startswith(f"data.source: download of http://alice:***@{host}/x.tgz "
                                     "failed: HTTP 401")
    # A user name alone may be a token: hidden too.
    with pytest.raises(SourceError, match=rf"of http://\*\*\*@{re.escape(host)}/x\.tgz failed"):
        resolve_source(f"http://t0ken@{host}/x.tgz", cache, **CAPS)
    card = modelcard.model_params(params({"data.source": url}), "head")
    assert card["data"]["source"] == record["source"]
    out = capsys.readouterr()
    _no_secret_in(cache, str(err.value), out.out, out.err, json.dumps(card))


def test_credentials_go_to_their_own_host_only(tmp_path, auth_server):
    host, other, www, log = auth_server
    make_tar(www / "d.tgz", GOOD)
    resolve_source(f"http://alice:s3cret@{host}/here", tmp_path / "a", **CAPS)
    assert log == [("first", "/here", "alice"), ("first", "/d.tgz", "alice")]
    resolve_source(f"http://alice:s3cret@{host}/away", tmp_path / "b", **CAPS)
    assert log[2:] == [("first", "/away", "alice"), ("second", "/d.tgz", None)]


def test_credentials_from_netrc(tmp_path, auth_server, monkeypatch):
    host, _, www, log = auth_server
    make_tar(www / "d.tgz", GOOD)
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login bob password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    info = resolve_source(f"http://{host}/d.tgz", tmp_path / "cache", **CAPS)
    assert log == [("first", "/d.tgz", "bob")] and (info.root / "dog" / "1.png").is_file()
    netrc.write_text("machine 127.0.0.1 login bob hunter2\n")  # no "password": the parser
    # quotes the password in its message, which is not shown
    with pytest.raises(SourceError) as err:
        resolve_source(f"http://{host}/other.tgz", tmp_path / "cache", **CAPS)
    assert str(err.value) == (f"data.source: http://{host}/other.tgz: cannot use the "
                              f"credentials in {netrc} (line 2 cannot be parsed)")


# --------------------------------------------------------------------------- links and the cache


def test_where_each_kind_of_link_leads_and_which_are_refused(tmp_path):
    from pipeline.data.sources import trees

    top, outside = tmp_path / "source", tmp_path / "elsewhere"
    (top / "cat").mkdir(parents=True)
    outside.mkdir()
    (outside / "x.png").write_bytes(PNG)
    real = os.path.realpath(top)
    links = {"in": top / "cat", "out": outside, "file": outside / "x.png",
             "loop": top, "broken": tmp_path / "gone"}
    for name, target in links.items():
        (top / name).symlink_to(target)
    assert trees.outside_link(top / "in", real) is None  # stays inside
    assert trees.outside_link(top / "out", real) == str(outside)
    assert trees.outside_link(top / "file", real) == str(outside / "x.png")
    assert trees.outside_link(top / "broken", real) is None  # leads nowhere (yet)
    assert trees.outside_link(top / "cat", real) is None  # no link
    for name in ("in", "file", "broken", "cat"):
        trees.check_folder_link(top / name, real, name)  # a file outside is never opened
    with pytest.raises(SourceError, match=(
            rf"^data.source: 'out' is a symbolic link to '{re.escape(str(outside))}', a folder "
            rf"outside the source '{re.escape(real)}', where nothing is read")):
        trees.check_folder_link(top / "out", real, "out")
    with pytest.raises(SourceError, match=(
            r"^data.root: class folder 'out' is a symbolic link .* a folder outside the data "
            r"folder ")):
        trees.check_folder_link(top / "out", real, "out", "class folder ", key="data.root",
                                within="the data folder")
    with pytest.raises(SourceError, match=(
            rf"^data.source: 'loop' is a symbolic link to '{re.escape(str(top))}', a folder that "
            r"holds it \(a loop\): remove the link$")):
        trees.check_folder_link(top / "loop", str(tmp_path), "loop")


def _cached(tmp_path, url: str, record: dict | None):
    """A download cache holding ``url``'s archive (and ``record``), as an earlier run left it."""
    from pipeline.core.net import redacted

    folder = tmp_path / "downloads"
    target, record_file = download_module.cache_paths(url, folder)
    target.parent.mkdir(parents=True)
    archive = make_zip(target, GOOD)
    if record is not None:
        record_file.write_text(json.dumps({"url": redacted(url), "bytes": archive.stat().st_size,
                                           "sha256": file_digest(archive)} | record))
    extracted = tmp_path / "extracted"
    (extracted / file_digest(archive)[:16]).mkdir(parents=True)
    return folder, target, record_file, extracted


def _fetch_cached(url, folder, extracted):
    return download_module.download(url, folder, sha256=None, max_bytes=10_000_000,
                                    allow_download=False, extracted=extracted)


def test_a_cached_download_is_reused_only_while_it_is_what_was_downloaded(tmp_path, caplog):
    url = "https://example.invalid/d.zip"
    folder, target, record_file, extracted = _cached(tmp_path, url, {})
    digest = file_digest(target)
    assert _fetch_cached(url, folder, extracted) == (target, digest)
    assert download_module.recorded(url, folder)["sha256"] == digest
    # A copy from before records were kept: checked as an archive, then recorded.
    record_file.unlink()
    assert _fetch_cached(url, folder, extracted) == (target, digest)
    assert json.loads(record_file.read_text()) == {
        "url": url, "bytes": target.stat().st_size, "sha256": digest}
    # Bytes changed since: discarded with its extraction, and named as such.
    size = target.stat().st_size
    target.write_bytes(target.read_bytes() + b"junk")
    with pytest.raises(SourceError, match="is not in the download cache"):
        _fetch_cached(url, folder, extracted)
    said = [r.getMessage() for r in caplog.records if "cached download" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(
        f"warning: cached download {target} of {url} is {size + 4:,} bytes with sha256 ")
    assert said[0].endswith(f", but {size:,} bytes with sha256 {digest[:12]} were downloaded: "
                            "discarded with its extraction; downloading again")
    assert not target.exists() and not record_file.exists()
    assert not (extracted / digest[:16]).exists()


def test_a_cached_copy_without_a_record_that_fails_its_check_is_discarded(tmp_path, caplog):
    url = "https://user:secret@example.invalid/d.zip"
    folder, target, record_file, extracted = _cached(tmp_path, url, None)
    target.write_bytes(target.read_bytes()[:-30])  # cut short: no central directory
    with pytest.raises(SourceError, match="is not in the download cache"):
        _fetch_cached(url, folder, extracted)
    said = [r.getMessage() for r in caplog.records if "cached download" in r.getMessage()]
    assert len(said) == 1 and " fails its check (archive " in said[0]
    assert "secret" not in said[0] and "user:***@example.invalid" in said[0]
    assert not target.exists() and not record_file.exists()
