"""What a local data.source may be (pipeline/data/sources/trees.py) and how a URL source is
recognised, keyed and authenticated (urls.py), called in-process: the one-line messages a
user reads, the mount table the system-tree rule reads (a table of the test's making), what
an opener sends (answered in-process: nothing leaves the machine), the edges of each."""

from __future__ import annotations

import base64
import email.message
import errno
import io
import netrc
import os
import socket
import urllib.parse
import urllib.request
import urllib.response
from pathlib import Path

import pytest
from helpers import c_locale

from pipeline.data.source_errors import SourceError
from pipeline.data.sources import trees, urls

NOT_DATA = ", not data: set data.source to a folder of class folders or an archive"


def mount_table(path: Path, monkeypatch, *rows: tuple[str | bytes, str]) -> Path:
    """A /proc/self/mountinfo of (mount point, file system type) rows at ``path``, as the
    kernel writes it (space, tab, newline and backslash escaped), read by trees.mounts()."""
    lines = []
    for number, (point, kind) in enumerate(rows, start=20):
        raw = point if isinstance(point, bytes) else os.fsencode(point)
        for char in b"\\ \t\n":
            raw = raw.replace(bytes([char]), b"\\%03o" % char)
        # The mount source ("none") differs from the type: the type is what is read.
        lines.append(b"%d 1 0:%d / %s rw,relatime shared:1 - %s none rw" % (
            number, number, raw, kind.encode()))
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    monkeypatch.setattr(trees, "MOUNTINFO", path)
    return path


@pytest.fixture
def top(tmp_path) -> str:
    """tmp_path as a real path (a mount table holds real paths)."""
    return os.path.realpath(tmp_path)


# --------------------------------------------------------------------------- local_source


def test_special_files_are_refused_by_kind_and_never_opened(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkfifo("photos.tar")  # opening it would wait for a writer for ever
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind("photos.sock")
        for spec, kind in (("photos.tar", "FIFO"), ("photos.sock", "socket"),
                           ("/dev/null", "character device")):
            with pytest.raises(SourceError) as err:
                trees.local_source(spec)
            assert str(err.value) == (f"data.source: {spec!r} is a {kind}, not a folder or an "
                                      "archive; it is not opened")
    assert Path("photos.tar").exists()


def test_a_system_tree_is_refused_in_one_line(tmp_path, top, monkeypatch):
    (tmp_path / "kernel" / "1").mkdir(parents=True)
    (tmp_path / "photos" / "cat").mkdir(parents=True)
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (f"{top}/kernel", "proc"))
    for spec in (f"{top}/kernel", f"{top}/kernel/1"):
        with pytest.raises(SourceError) as err:
            trees.local_source(spec)
        assert str(err.value) == (f"data.source: {spec!r} is in {top}/kernel, a proc file "
                                  f"system (a system tree){NOT_DATA}")
    with pytest.raises(SourceError) as err:
        trees.local_source(top)
    assert str(err.value) == (f"data.source: {top!r} holds {top}/kernel, a proc file system "
                              f"(a system tree){NOT_DATA}")
    assert trees.local_source(f"{top}/photos") == Path(top, "photos")


def test_a_folder_that_cannot_be_listed_is_named_with_the_fix(tmp_path, monkeypatch):
    # chmod does not stop root: the listing fails the way it does for another user.
    locked = tmp_path / "photos"
    locked.mkdir()
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    with pytest.raises(SourceError) as err:
        trees.local_source(str(locked))
    assert str(err.value) == (f"data.source: folder {str(locked)!r} cannot be read "
                              "(Permission denied): fix its permissions (chmod -R u+rX)")


def test_a_path_that_is_not_there_says_why(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("a").symlink_to("b")
    Path("b").symlink_to("a")
    Path("dangling").symlink_to("no such folder")
    Path("notes.txt").write_text("hello")
    for spec, why in (
            ("a", "is a symbolic link loop (a link that leads back to itself)"),
            ("dangling", "does not exist (a broken symbolic link to 'no such folder')"),
            ("no such folder", "does not exist"),
            ("notes.txt/photos", "cannot be read (Not a directory)")):
        with pytest.raises(SourceError) as err:
            trees.local_source(spec)
        assert str(err.value) == f"data.source: {spec!r} {why}"


# --------------------------------------------------------------------------- the mount table


def test_mount_points_are_unescaped_as_the_kernel_escapes_them(tmp_path, top, monkeypatch):
    odd = f"{top}/my photos\tand\\more\nlines"
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (odd, "proc"))
    assert b"my\\040photos\\011and\\134more\\012lines" in trees.MOUNTINFO.read_bytes()
    assert trees.mounts() == [("/", "ext4"), (odd, "proc")]
    (tmp_path / "my photos").mkdir()
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (f"{top}/my photos", "proc"))
    with pytest.raises(SourceError, match=r" is in .*/my photos, a proc file system "):
        trees.local_source(str(tmp_path / "my photos"))


def test_a_mount_point_that_is_not_utf8_is_read_as_the_file_system_names_it(tmp_path, top,
                                                                            monkeypatch):
    point = os.fsencode(top) + b"/caf\xe9"  # Latin-1: a real path Python keeps as surrogates
    os.mkdir(point)
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (point, "sysfs"))
    assert trees.mounts() == [("/", "ext4"), (os.fsdecode(point), "sysfs")]
    assert trees.system_tree(os.fsdecode(point + b"/x")) == (
        f"is in {os.fsdecode(point)}, a sysfs file system (a system tree)")


def test_the_mount_table_is_utf8_whatever_the_locale(tmp_path, top, monkeypatch):
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (f"{top}/café", "proc"))
    with c_locale():
        assert trees.mounts() == [("/", "ext4"), (f"{top}/café", "proc")]
        assert trees.system_tree(f"{top}/café/1") == (
            f"is in {top}/café, a proc file system (a system tree)")


def test_every_line_with_a_mount_point_and_a_type_is_read_the_rest_skipped(tmp_path,
                                                                        monkeypatch):
    table = tmp_path / "mountinfo"
    table.write_text(
        "20 1 0:20 / / rw - ext4 /dev/vda rw\n"
        "garbage\n"
        "21 1 - proc proc rw\n"  # too few fields before the separator
        "22 1 0:22 / /none rw - \n"  # no type after it
        "23 1 0:23 / /five - proc proc\n"  # just what is read: the mount point and the type
        "24 1 0:24 / /dash rw - sysfs - rw\n"  # a mount source named "-": the type is first
        "25 1 0:25 / /opt rw shared:1 master:2 - cgroup2 none rw\n", encoding="utf-8")
    monkeypatch.setattr(trees, "MOUNTINFO", table)
    assert trees.mounts() == [("/", "ext4"), ("/five", "proc"), ("/dash", "sysfs"),
                              ("/opt", "cgroup2")]


# --------------------------------------------------------------------------- system_tree


def test_the_mount_holding_a_path_decides(tmp_path, top, monkeypatch):
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), ("/p", "proc"),
                (f"{top}/data/p", "proc"), (f"{top}/data/disk", "ext4"))
    assert trees.system_tree("/p/1") == "is in /p, a proc file system (a system tree)"
    assert trees.system_tree(f"{top}/data/p/self") == (
        f"is in {top}/data/p, a proc file system (a system tree)")
    assert trees.system_tree(f"{top}/data") == (
        f"holds {top}/data/p, a proc file system (a system tree)")
    # Beside a system tree, or holding an ordinary mount: data.
    for real in (f"{top}/other", f"{top}/data/disk", f"{top}/data/dis", "/pr"):
        assert trees.system_tree(real) is None, real


def test_a_later_mount_on_the_same_point_hides_the_earlier(tmp_path, top, monkeypatch):
    point = f"{top}/m"
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (point, "proc"),
                (point, "ext4"))
    assert trees.system_tree(point) is None and trees.system_tree(f"{point}/x") is None
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"), (point, "ext4"),
                (point, "proc"))
    assert trees.system_tree(f"{point}/x") == f"is in {point}, a proc file system (a system tree)"


def test_proc_and_sys_are_known_by_path_without_a_mount_table(tmp_path, top, monkeypatch):
    monkeypatch.setattr(trees, "MOUNTINFO", tmp_path / "no mountinfo")  # not Linux, say
    assert trees.mounts() == []
    assert trees.system_tree("/") == "holds /proc, a proc file system (a system tree)"
    assert trees.system_tree("/sys/class") == "is in /sys, a sysfs file system (a system tree)"
    assert trees.system_tree(top) is None
    # A table that does not list them: known by path too.
    mount_table(tmp_path / "mountinfo", monkeypatch, ("/", "ext4"))
    assert trees.system_tree("/proc/1") == "is in /proc, a proc file system (a system tree)"


# --------------------------------------------------------------------------- links


def test_a_link_to_a_folder_outside_is_refused_with_the_way_out(tmp_path):
    source, outside = tmp_path / "source", tmp_path / "elsewhere"
    source.mkdir()
    outside.mkdir()
    (source / "cat").symlink_to(outside)
    real = os.path.realpath(source)
    with pytest.raises(SourceError) as err:
        trees.check_folder_link(source / "cat", real, "cat")
    assert str(err.value) == (
        f"data.source: 'cat' is a symbolic link to {str(outside)!r}, a folder outside the "
        f"source {real!r}, where nothing is read (the source stage's fingerprint would not "
        "see it change): replace the link by that folder (or a bind mount), or set "
        "data.source to a folder holding both")


# --------------------------------------------------------------------------- URLs


def test_only_http_urls_are_accepted_as_urls(tmp_path):
    for spec in ("https://host/d.tgz", "HTTP://host/d.tgz", "http://u:p@host/d", "photos",
                 str(tmp_path)):
        urls.check_scheme(spec)
    with pytest.raises(SourceError) as err:
        urls.check_scheme("ftp://alice:s3cret@host/d.tgz")
    assert str(err.value) == ("data.source: 'ftp://alice:***@host/d.tgz': only http(s) URLs "
                              "are supported")


def test_credentials_are_seen_in_urls_only():
    said = {spec: urls.has_credentials(spec) for spec in (
        "https://alice:s3cret@host/d.tgz", "https://t0ken@host/d.tgz", "https://host/d.tgz",
        "//alice@host/photos", "photos@2x")}
    assert said == {"https://alice:s3cret@host/d.tgz": True, "https://t0ken@host/d.tgz": True,
                    "https://host/d.tgz": False, "//alice@host/photos": False,
                    "photos@2x": False}


def test_a_url_is_keyed_without_its_password_and_requested_without_credentials():
    for url, key, requested in (
            ("https://alice:s3cret@host/d.tgz", "https://alice@host/d.tgz", "https://host/d.tgz"),
            ("https://t0ken@host/d.tgz", "https://t0ken@host/d.tgz", "https://host/d.tgz"),
            ("HTTPS://Host/d.tgz?", "HTTPS://Host/d.tgz?", "HTTPS://Host/d.tgz?")):  # as written
        assert (urls.cache_key(url), urls.bare(url)) == (key, requested), url


class Answering(urllib.request.BaseHandler):
    """Answers every http(s) request itself, before urllib's own handlers (nothing leaves
    the machine), noting (URL, "user:password" sent by HTTP Basic authentication or None)."""

    handler_order = 100

    def __init__(self):
        self.sent: list[tuple[str, str | None]] = []

    def http_open(self, request):
        given = request.get_header("Authorization")
        self.sent.append((request.full_url, base64.b64decode(given.removeprefix("Basic "))
                          .decode() if given else None))
        answer = urllib.response.addinfourl(io.BytesIO(b""), email.message.Message(),
                                            request.full_url, 200)
        answer.msg = "OK"
        return answer

    https_open = http_open


def sent(url: str, *targets: str) -> list[str | None]:
    """What urls.opener(url) sends to each of ``targets`` (on its first request)."""
    opener, answering = urls.opener(url), Answering()
    opener.add_handler(answering)
    for target in targets:
        opener.open(target).close()
    return [login for _, login in answering.sent]


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty home folder, no $NETRC."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("NETRC", raising=False)
    (tmp_path / "home").mkdir()
    return tmp_path / "home"


def test_credentials_in_a_url_go_up_front_to_its_own_host_only(home):
    url = "http://al%40ice:p%3As@host:8080/d.tgz"  # percent-encoded: sent decoded
    assert sent(url, urls.bare(url), "http://host:8080/other", "http://elsewhere/d.tgz",
                "http://host/d.tgz") == ["al@ice:p:s", "al@ice:p:s", None, None]
    # An e-mail address as the user name, its @ not encoded: the host is after the last @.
    assert sent("https://me@mail.org:pw@host/d.tgz", "https://host/d.tgz") == ["me@mail.org:pw"]
    assert sent("https://t0ken@host/d.tgz", "https://host/d.tgz") == ["t0ken:"]  # a token
    assert sent("https://host/d.tgz", "https://host/d.tgz") == [None]


def test_credentials_from_netrc_go_to_its_host_only(tmp_path, home, monkeypatch):
    entries = "machine host login bob password hunter2\nmachine tokens login t0ken\n"
    (home / ".netrc").write_text(entries)
    (home / ".netrc").chmod(0o600)
    for url in ("http://host/d.tgz", "http://tokens/d.tgz", "http://elsewhere/d.tgz"):
        assert sent(url, url) == [{"host": "bob:hunter2", "tokens": "t0ken:"}.get(
            urllib.parse.urlsplit(url).hostname)], url
    # $NETRC names another file, read instead of ~/.netrc.
    (tmp_path / "netrc").write_text("machine host login carol password n3w\n")
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    assert sent("http://host/d.tgz", "http://host/d.tgz") == ["carol:n3w"]
    (home / ".netrc").unlink()
    assert sent("http://host/d.tgz", "http://host/d.tgz") == ["carol:n3w"]
    monkeypatch.delenv("NETRC")
    assert sent("http://host/d.tgz", "http://host/d.tgz") == [None]  # no file: no credentials


def test_a_netrc_that_cannot_be_used_is_named_with_why_never_its_password(tmp_path, home,
                                                                         monkeypatch):
    default = home / ".netrc"
    url = "https://host/d.tgz"

    def refusal() -> str:
        with pytest.raises(SourceError) as err:
            urls.opener(url)
        assert "hunter2" not in str(err.value)
        return str(err.value)

    default.write_text("machine host login bob password hunter2\n")
    default.chmod(0o644)
    assert refusal() == (f"data.source: {url}: cannot use the credentials in {default} "
                         "(others may read it: chmod 600)")
    default.chmod(0o600)
    someone_else = os.getuid() + 1
    with monkeypatch.context() as other:  # as another user sees the file (root or not)
        other.setattr(os, "getuid", lambda: someone_else)
        assert refusal() == (f"data.source: {url}: cannot use the credentials in {default} "
                             "(another user owns it: chown it)")
    default.write_text("machine host login bob hunter2\n")  # no "password"
    assert refusal() == (f"data.source: {url}: cannot use the credentials in {default} "
                         "(line 2 cannot be parsed)")
    default.write_bytes(b"machine host login b\xf6b password hunter2\n")  # Latin-1
    assert refusal() == (f"data.source: {url}: cannot use the credentials in {default} "
                         "(it is not UTF-8 text)")
    default.write_text("machine host login bob password hunter2\n")

    def unreadable(file=None):  # chmod does not stop root
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), file)

    monkeypatch.setattr(netrc, "netrc", unreadable)
    assert refusal() == (f"data.source: {url}: cannot use the credentials in {default} "
                         "(Permission denied)")
