"""archives: what an archive may hold, its caps at their edges, and what is left on disk.

In-process calls of ``extract_archive`` and ``verify_archive`` (test_sources.py goes through
``resolve_source``): each refusal's whole one-line message, and nothing in the cache after it.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

import pytest
from helpers import PNG, tinfo, write_tar, write_zip, zinfo

from pipeline.core.hashing import CHUNK
from pipeline.data.source_errors import SourceError
from pipeline.data.sources import archives
from pipeline.data.sources.archives import MARKER, extract_archive, verify_archive

SHA = "0123456789abcdef" * 4
BIG = {"max_bytes": 10_000_000, "max_files": 1000}


def extract(archive: Path, cache: Path, **caps) -> Path:
    return extract_archive(archive, cache, SHA, **(BIG | caps))


def refused(archive: Path, cache: Path, **caps) -> str:
    """The message extraction is refused with; nothing is left in the cache."""
    with pytest.raises(SourceError) as err:
        extract(archive, cache, **caps)
    assert not cache.exists() or list(cache.iterdir()) == []  # no temporary folder, no marker
    return str(err.value)


def tree(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root``: a file's bytes, None for a folder."""
    return {p.relative_to(root).as_posix(): None if p.is_dir() else p.read_bytes()
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


# --------------------------------------------------------------------------- names


NAMES = [
    ("nul.tar", lambda p: write_tar(p, [tinfo("cat/x.png", pax={"path": "cat/a\x00b.png"})]),
     "archive nul.tar: member 'cat/a\\x00b.png' rejected: NUL byte in the name"),
    ("dot.tar", lambda p: write_tar(p, [("cat/1.png", PNG), (".", b"x")]),
     "archive dot.tar: member '.' rejected: empty path"),
    ("dotdot.zip", lambda p: write_zip(p, [("cat/1.png", PNG), ("cat/../../x.png", PNG)]),
     "archive dotdot.zip: member 'cat/../../x.png' rejected: '..' path component (would "
     "write outside the extraction folder)"),
    ("abs.tar", lambda p: write_tar(p, [("/etc/x.png", PNG)]),
     "archive abs.tar: member '/etc/x.png' rejected: absolute path"),
    ("drive.zip", lambda p: write_zip(p, [("D:/x.png", PNG)]),
     "archive drive.zip: member 'D:/x.png' rejected: absolute path"),
    ("lower_drive.zip", lambda p: write_zip(p, [("c:x.png", PNG)]),
     "archive lower_drive.zip: member 'c:x.png' rejected: absolute path"),
]


@pytest.mark.parametrize("name, build, message", NAMES, ids=[n[0] for n in NAMES])
def test_a_member_name_breaking_a_rule_is_refused_naming_it_and_the_rule(tmp_path, name, build,
                                                                         message):
    assert refused(build(tmp_path / name), tmp_path / "cache") == message


def test_the_root_folder_entry_is_skipped(tmp_path):
    """``tar -C dir .`` and some zip tools store the root itself as ``./``: not an entry of
    the data (max_files counts the others), and what follows it is extracted."""
    two = {"cat/1.png": PNG, "cat/2.png": PNG}
    tgz = write_tar(tmp_path / "d.tgz", [tinfo("./", tarfile.DIRTYPE)]
                    + [(f"./{k}", v) for k, v in two.items()], "w:gz")
    assert tree(extract(tgz, tmp_path / "c1", max_files=2)) == {"cat": None} | two
    zipped = write_zip(tmp_path / "d.zip", [("./", b"")] + list(two.items()))
    assert tree(extract(zipped, tmp_path / "c2", max_files=2)) == {"cat": None} | two


# --------------------------------------------------------------------------- entry types

LINKS = [
    ("sym.tar", [("cat/1.png", PNG), tinfo("cat/2.png", tarfile.SYMTYPE, linkname="1.png")],
     "archive sym.tar: member 'cat/2.png' rejected: symbolic link to '1.png' (links are not "
     "extracted; repack with `tar --dereference`)"),
    ("hard.tar", [("cat/1.png", PNG), tinfo("cat/2.png", tarfile.LNKTYPE, linkname="cat/1.png")],
     "archive hard.tar: member 'cat/2.png' rejected: hard link to 'cat/1.png' (links are not "
     "extracted; repack with `tar --hard-dereference`)"),
    ("chr.tar", [tinfo("cat/tty", tarfile.CHRTYPE)],
     "archive chr.tar: member 'cat/tty' rejected: device or FIFO file"),
    ("blk.tar", [tinfo("cat/sda", tarfile.BLKTYPE)],
     "archive blk.tar: member 'cat/sda' rejected: device or FIFO file"),
    ("pipe.tar", [tinfo("cat/pipe", tarfile.FIFOTYPE)],
     "archive pipe.tar: member 'cat/pipe' rejected: device or FIFO file"),
    ("odd.tar", [("cat/1.png", PNG), tinfo("cat/vol", b"V", size=3)],
     "archive odd.tar: member 'cat/vol' rejected: unsupported entry type b'V'"),
]


@pytest.mark.parametrize("name, entries, message", LINKS, ids=[e[0] for e in LINKS])
def test_tar_links_and_special_files_are_refused_saying_why(tmp_path, name, entries, message):
    assert refused(write_tar(tmp_path / name, entries), tmp_path / "cache") == message


ZIP_SPECIAL = [
    ("symlink", stat.S_IFLNK | 0o777, "symbolic link (links are not extracted; repack the "
                                      "archive with the files themselves)"),
    ("chr", stat.S_IFCHR | 0o644, "device, FIFO or socket file"),
    ("blk", stat.S_IFBLK | 0o644, "device, FIFO or socket file"),
    ("pipe", stat.S_IFIFO | 0o644, "device, FIFO or socket file"),
    ("socket", stat.S_IFSOCK | 0o644, "device, FIFO or socket file"),
]


@pytest.mark.parametrize("kind, mode, rule", ZIP_SPECIAL, ids=[z[0] for z in ZIP_SPECIAL])
def test_zip_links_and_special_files_are_refused_saying_why(tmp_path, kind, mode, rule):
    archive = write_zip(tmp_path / "s.zip", [("cat/1.png", PNG), (zinfo("cat/x", mode), b"t")])
    assert refused(archive, tmp_path / "cache") == f"archive s.zip: member 'cat/x' rejected: {rule}"


def test_zip_unix_modes_of_files_and_folders_are_extracted_and_other_systems_bits_ignored(
        tmp_path, umask_022):
    """The high 16 bits of a zip entry's attributes are a Unix mode only when it was made on
    Unix; the file gets 0o644 whatever the archive says (no executable images)."""
    archive = write_zip(tmp_path / "m.zip", [
        (zinfo("cat/", stat.S_IFDIR | 0o755), b""),
        (zinfo("cat/1.png", stat.S_IFREG | 0o777), PNG),
        (zinfo("cat/2.png", 0o600), PNG),  # permission bits only, no file type: a file
        # Made on MS-DOS/Windows: those bits are not a mode, even if they look like a link's.
        (zinfo("dog/1.png", stat.S_IFLNK | 0o777, system=0), PNG),
    ])
    files = extract(archive, tmp_path / "cache")
    assert tree(files) == {"cat": None, "cat/1.png": PNG, "cat/2.png": PNG, "dog": None,
                           "dog/1.png": PNG}
    assert {stat.S_IMODE(p.stat().st_mode) for p in files.rglob("*.png")} == {0o644}


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_folder_entries_become_folders_and_the_marker_counts_files_and_bytes(tmp_path, kind):
    files = {"cat/1.png": PNG, "cat/2.png": PNG * 2, "dog/sub/1.png": PNG * 3}
    folders = ["dog/sub/", "cat/", "dog/"]  # a folder before its parent's entry
    if kind == "zip":
        archive = write_zip(tmp_path / "d.zip", [(f, b"") for f in folders] + list(files.items()))
    else:
        archive = write_tar(tmp_path / "d.tar", [tinfo(f, tarfile.DIRTYPE) for f in folders]
                            + list(files.items()))
    cache = tmp_path / "cache"
    root = extract(archive, cache)
    assert root == cache / SHA[:16] / archives.FILES
    assert tree(root) == {"cat": None, "dog": None, "dog/sub": None} | files
    assert json.loads((cache / SHA[:16] / MARKER).read_text()) == {
        "sha256": SHA, "files": 3, "bytes": sum(len(v) for v in files.values())}
    assert sorted(p.name for p in cache.iterdir()) == [SHA[:16]]  # no temporary folder left
    assert stat.S_IMODE((cache / SHA[:16]).stat().st_mode) == 0o755  # not mkdtemp's 0o700


# --------------------------------------------------------------------------- caps


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_exactly_max_files_entries_pass_and_one_more_fails(tmp_path, kind):
    three = [(f"cat/{i}.png", PNG) for i in range(3)]

    def build(name, entries):
        if kind == "zip":
            return write_zip(tmp_path / f"{name}.zip", entries)
        return write_tar(tmp_path / f"{name}.tar", entries)

    root = extract(build("three", three), tmp_path / "c1", max_files=3)
    assert len(list(root.rglob("*.png"))) == 3
    # A folder entry is an entry too (the cap bounds the headers, files or not).
    with_folder = [("cat/", b"") if kind == "zip" else tinfo("cat", tarfile.DIRTYPE)] + three
    for name, entries in (("four", three + [("cat/3.png", PNG)]), ("folder", with_folder)):
        archive = build(name, entries)
        assert refused(archive, tmp_path / "c2", max_files=3) == (
            f"archive {archive.name}: more than 3 entries (max_files); not extracted")


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_exactly_max_bytes_pass_and_one_more_fails(tmp_path, kind):
    # Over the tar's own record padding (10 KiB of zeros that verify_archive reads too).
    files = [("cat/1.png", b"\1" * 12_000), ("dog/1.png", b"\2" * 8_000)]
    if kind == "zip":
        archive = write_zip(tmp_path / "d.zip", [("cat/", b"")] + files)
    else:  # a folder entry's size is not counted
        archive = write_tar(tmp_path / "d.tgz", [tinfo("cat", tarfile.DIRTYPE)] + files, "w:gz")
    root = extract(archive, tmp_path / "c1", max_bytes=20_000)
    assert tree(root)["cat/1.png"] == files[0][1]
    assert json.loads((root.parent / MARKER).read_text())["bytes"] == 20_000
    assert refused(archive, tmp_path / "c2", max_bytes=19_999) == (
        f"archive {archive.name}: 20,000 bytes once extracted, more than the 19,999 allowed "
        "(max_bytes); not extracted")


def test_a_tar_folder_header_claiming_a_size_is_refused_by_the_declared_total(tmp_path):
    """A folder's size field holds no data (tarfile does not skip any for it), but a header
    that claims gigabytes is not to be trusted either: verify_archive's declared total."""
    archive = write_tar(tmp_path / "d.tar", [tinfo("cat", tarfile.DIRTYPE, size=50_000),
                                             ("cat/1.png", b"\1" * 20_000)])
    assert refused(archive, tmp_path / "cache", max_bytes=60_000) == (
        "archive d.tar: more than 60,000 bytes once extracted (max_bytes); not used")


def test_the_budget_counts_files_and_bytes_while_writing(tmp_path):
    """The while-writing half of the caps, for a header that understates."""
    budget = archives._Budget(tmp_path / "lying.zip", max_bytes=1000, max_files=2)
    budget.take_file()
    budget.take_file()
    with pytest.raises(SourceError) as err:
        budget.take_file()
    assert str(err.value) == "archive lying.zip: more than 2 entries (max_files); not extracted"
    out = io.BytesIO()
    budget.copy(io.BytesIO(b"\1" * 1000), out, "cat/x.png")  # exactly max_bytes
    assert out.getvalue() == b"\1" * 1000
    with pytest.raises(SourceError) as err:
        budget.copy(io.BytesIO(b"\1"), out, "cat/y.png")
    assert str(err.value) == ("archive lying.zip: member 'cat/y.png' rejected: extraction "
                              "exceeded 1,000 bytes (max_bytes; the header understated the size)")


def test_the_budget_stops_reading_an_endless_member_within_a_chunk_of_the_cap(tmp_path):
    class Endless(io.RawIOBase):  # a bomb: zeros without end
        read_total = 0

        def read(self, size=-1):
            size = 1 << 30 if size is None or size < 0 else size  # "all": a GiB at once
            self.read_total += size
            return bytes(size)

    src = Endless()
    with pytest.raises(SourceError, match="extraction exceeded 10 bytes"):
        archives._Budget(tmp_path / "bomb.zip", max_bytes=10, max_files=1).copy(
            src, io.BytesIO(), "x")
    assert src.read_total <= CHUNK


def test_a_member_whose_data_runs_past_its_header_is_refused_while_writing(tmp_path):
    dest = tmp_path / "files"
    dest.mkdir()
    member = archives._Member("cat/x.png", PurePosixPath("cat/x.png"), False, 10)
    budget = archives._Budget(tmp_path / "lying.tar", max_bytes=100, max_files=5)
    with pytest.raises(SourceError) as err:
        archives._write_member(dest, member, io.BytesIO(b"\1" * 5000), budget)
    assert str(err.value) == ("archive lying.tar: member 'cat/x.png' rejected: extraction "
                              "exceeded 100 bytes (max_bytes; the header understated the size)")


def test_a_member_that_would_land_outside_the_folder_is_never_written(tmp_path):
    """Defence in depth: were a link ever in the extraction folder, writing through it is
    refused (names are checked and no link is made, so this cannot happen otherwise)."""
    dest, outside = tmp_path / "files", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "cat").symlink_to(outside)
    member = archives._Member("cat/x.png", PurePosixPath("cat/x.png"), False, 3)
    budget = archives._Budget(tmp_path / "evil.tar", max_bytes=100, max_files=5)
    with pytest.raises(SourceError) as err:
        archives._write_member(dest, member, io.BytesIO(b"abc"), budget)
    assert str(err.value) == ("archive evil.tar: member 'cat/x.png' rejected: resolves outside "
                              "the extraction folder")
    assert list(outside.iterdir()) == []


def fail_to_create(monkeypatch, name: str, code: int) -> None:
    """The extraction's os.open fails with ``code`` for a file called ``name``."""
    real_open = os.open

    def failing(path, *args, **kwargs):
        if Path(path).name == name:
            raise OSError(code, os.strerror(code), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(archives.os, "open", failing)


def test_a_name_too_long_for_the_file_system_is_named(tmp_path, monkeypatch):
    """A file system with a NAME_MAX below the 255 bytes the names are checked against."""
    fail_to_create(monkeypatch, "long.png", errno.ENAMETOOLONG)
    archive = write_zip(tmp_path / "n.zip", [("cat/1.png", PNG), ("cat/long.png", PNG)])
    assert refused(archive, tmp_path / "cache") == (
        "archive n.zip: member 'cat/long.png' rejected: its name is too long for this file "
        "system")


def test_other_write_errors_are_not_mistaken_for_a_long_name(tmp_path, monkeypatch):
    fail_to_create(monkeypatch, "1.png", errno.ENOSPC)
    archive = write_zip(tmp_path / "n.zip", [("cat/1.png", PNG)])
    with pytest.raises(OSError) as err:
        extract(archive, tmp_path / "cache")
    assert err.value.errno == errno.ENOSPC and not isinstance(err.value, SourceError)
    assert list((tmp_path / "cache").iterdir()) == []


# --------------------------------------------------------------------------- duplicates


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_folder_listed_twice_is_fine_but_a_file_listed_twice_is_not(tmp_path, kind):
    def build(name, entries):
        if kind == "zip":
            return write_zip(tmp_path / f"{name}.zip",
                             [(n, b"") if n.endswith("/") else (n, d) for n, d in entries])
        return write_tar(tmp_path / f"{name}.tar",
                         [tinfo(n, tarfile.DIRTYPE) if n.endswith("/") else (n, d)
                          for n, d in entries])

    twice = build("twice", [("cat/", b""), ("cat/1.png", PNG), ("./cat/", b"")])
    assert tree(extract(twice, tmp_path / "c1")) == {"cat": None, "cat/1.png": PNG}
    cases = {
        "file": ([("cat/1.png", PNG), ("./cat/1.png", b"other")], "'./cat/1.png'"),
        "folder_then_file": ([("cat/x/", b""), ("cat/x", PNG)], "'cat/x'"),
        "file_then_folder": ([("cat/x", PNG), ("cat/x/", b"")], "'cat/x/'" if kind == "zip"
                             else "'cat/x'"),
    }
    for name, (entries, member) in cases.items():
        archive = build(name, entries)
        assert refused(archive, tmp_path / "c2") == (
            f"archive {archive.name}: member {member} rejected: duplicate path")


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_file_used_as_a_folder_is_refused(tmp_path, kind):
    entries = [("cat/1.png", PNG), ("a/b", PNG), ("a/b/c/d.png", PNG)]
    archive = (write_zip(tmp_path / "f.zip", entries) if kind == "zip"
               else write_tar(tmp_path / "f.tar", entries))
    assert refused(archive, tmp_path / "cache") == (
        f"archive {archive.name}: member 'a/b/c/d.png' rejected: its folder 'a/b' is a file in "
        "the archive")


# --------------------------------------------------------------------------- reuse


def test_a_complete_extraction_is_reused_and_an_incomplete_one_redone(tmp_path):
    archive = write_zip(tmp_path / "d.zip", [("cat/1.png", PNG)])
    cache = tmp_path / "cache"
    root = extract(archive, cache)
    (root / "cat" / "added.png").write_bytes(PNG)  # to tell a reuse from a redo
    archive.unlink()  # not even read again
    assert extract(archive, cache) == root and (root / "cat" / "added.png").exists()
    write_zip(archive, [("cat/1.png", PNG)])
    (root.parent / MARKER).unlink()  # as if the run died before the marker
    assert extract(archive, cache) == root
    assert tree(root) == {"cat": None, "cat/1.png": PNG}
    assert (root.parent / MARKER).is_file()


def test_an_extraction_completed_while_waiting_for_the_lock_is_reused(tmp_path, monkeypatch):
    """Another experiment of the queue held the lock and finished the same archive."""
    archive = write_zip(tmp_path / "d.zip", [("cat/1.png", PNG)])
    cache = tmp_path / "cache"
    done = cache / SHA[:16]

    class OtherFinishedFirst:
        def __init__(self, path):
            pass

        def __enter__(self):
            (done / archives.FILES).mkdir(parents=True)
            (done / MARKER).write_text("{}")

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(archives, "FileLock", OtherFinishedFirst)
    assert extract(archive, cache) == done / archives.FILES
    assert list((done / archives.FILES).iterdir()) == []  # its result, not extracted again


def test_a_file_that_is_not_an_archive_is_named(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    for call in (lambda: extract(notes, tmp_path / "cache"),
                 lambda: verify_archive(notes, 1000)):
        with pytest.raises(SourceError) as err:
            call()
        assert str(err.value) == "data.source: notes.txt is not a zip or tar archive"
    assert not (tmp_path / "cache").exists()


# --------------------------------------------------------------------------- verify_archive


def _cuts(size: int) -> list[int]:
    return sorted({1, 10, 100, size // 4, size // 2, size - 600, size - 100, size - 22,
                   size - 1} - {0})


@pytest.mark.parametrize("kind", ["zip", "tar", "tgz"])
def test_an_archive_cut_anywhere_is_refused_naming_it(tmp_path, kind):
    entries = [(f"cat/{i}.png", bytes([i]) * 3000) for i in range(4)]
    if kind == "zip":
        whole = write_zip(tmp_path / "w.zip", entries)
    else:
        whole = write_tar(tmp_path / f"w.{kind}", entries, "w" if kind == "tar" else "w:gz")
    verify_archive(whole, 20_000)
    data = whole.read_bytes()
    # A plain tar cut after its first end block (header and data of 4 x 3,584 bytes, then
    # 512 zeros) loses only padding: it is whole.
    whole_up_to = 4 * 3584 + 512 if kind == "tar" else len(data)
    for cut in _cuts(len(data)):
        if cut >= whole_up_to:
            (tmp_path / "short.tar").write_bytes(data[:cut])
            verify_archive(tmp_path / "short.tar", 20_000)
            continue
        part = tmp_path / f"cut.{kind}"
        part.write_bytes(data[:cut])
        with pytest.raises(SourceError) as err:
            verify_archive(part, 20_000)
        message = str(err.value)
        assert message.startswith((f"archive cut.{kind} is corrupt or truncated: ",
                                   f"archive cut.{kind} is truncated: no end-of-archive block",
                                   f"data.source: cut.{kind} is not a zip or tar archive")), (
            cut, message)


def test_a_tar_cut_after_a_whole_member_says_where(tmp_path):
    entries = [(f"cat/{i}.png", bytes([i]) * 1000) for i in range(3)]
    data = write_tar(tmp_path / "w.tar", entries).read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[:2 * 1536])  # two whole members (header + 1,000 bytes padded to 1,024)
    with pytest.raises(SourceError) as err:
        verify_archive(cut, 20_000)
    assert str(err.value) == ("archive cut.tar is truncated: no end-of-archive block after its "
                              "last whole member (byte 3,072 of 3,072)")


def test_a_tar_with_garbage_where_its_end_block_should_be_is_refused(tmp_path):
    entries = [("cat/1.png", b"\1" * 1000)]
    data = write_tar(tmp_path / "w.tar", entries).read_bytes()
    for garbage in (b"X" * 512, b"\0" * 511 + b"\1", b"hello" + b"\0" * 507):
        bad = tmp_path / "g.tar"
        bad.write_bytes(data[:1536] + garbage + b"\0" * 1024)
        with pytest.raises(SourceError) as err:
            verify_archive(bad, 20_000)
        assert str(err.value) == ("archive g.tar is truncated: no end-of-archive block after "
                                  f"its last whole member (byte 1,536 of {1536 + 1536:,})")


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_verify_refuses_a_bomb_over_max_bytes_from_its_headers(tmp_path, kind):
    entries = [("cat/1.png", b"\0" * 30_000), ("cat/2.png", b"\0" * 30_000)]  # each under
    if kind == "zip":
        bomb = tmp_path / "bomb.zip"
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in entries:
                zf.writestr(name, data)
    else:
        bomb = write_tar(tmp_path / "bomb.tgz", entries, "w:gz")
    assert bomb.stat().st_size < 1000  # it compresses: only the headers tell
    verify_archive(bomb, 60_000)  # exactly the cap
    with pytest.raises(SourceError) as err:
        verify_archive(bomb, 59_999)
    assert str(err.value) == (f"archive {bomb.name}: more than 59,999 bytes once extracted "
                              "(max_bytes); not used")


def test_verify_refuses_a_bomb_hidden_after_the_end_of_a_tar(tmp_path):
    """Zeros after the end block pass for padding; a gigabyte of them is a bomb, read no
    further than the cap."""
    data = write_tar(tmp_path / "w.tar", [("cat/1.png", b"\1" * 1000)]).read_bytes()
    bomb = tmp_path / "tail.tgz"
    bomb.write_bytes(gzip.compress(data + bytes(200_000)))
    verify_archive(bomb, 300_000)
    with pytest.raises(SourceError) as err:
        verify_archive(bomb, 100_000)
    assert str(err.value) == ("archive tail.tgz: member '(the end)' rejected: extraction "
                              "exceeded 100,000 bytes (max_bytes; the header understated the "
                              "size)")


def test_a_zip_member_damaged_inside_is_refused_by_its_crc(tmp_path):
    """The central directory is whole, so the zip opens and lists fine: only reading each
    member to its end, where zipfile checks the CRC, finds the damage."""
    data = write_zip(tmp_path / "w.zip", [("cat/1.png", b"\1" * 1000),
                                          ("cat/2.png", b"\2" * 1000)]).read_bytes()
    start = data.index(b"\2" * 1000)
    bad = tmp_path / "bad.zip"
    bad.write_bytes(data[:start + 500] + b"\3" + data[start + 501:])
    expected = "archive bad.zip is corrupt or truncated: Bad CRC-32 for file 'cat/2.png'"
    with pytest.raises(SourceError) as err:
        verify_archive(bad, 20_000)
    assert str(err.value) == expected
    assert refused(bad, tmp_path / "cache") == expected


# Each reader's own error for a damaged archive, as one message naming it.
_DATA = bytes(range(256)) * 40  # 10,240 bytes, the same each run (so are the CRCs below)


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _zip_bytes(compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as zf:
        zf.writestr("cat/1.png", _DATA)
    return out.getvalue()


def _tar_bytes(mode: str) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode=mode) as tf:
        tf.addfile(tinfo("cat/1.png", size=len(_DATA)), io.BytesIO(_DATA))
    return out.getvalue()


def _method(data: bytes, method: int) -> bytes:
    """A zip with its member's compression method field (local and central header) set."""
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data = data[:local + 8] + method.to_bytes(2, "little") + data[local + 10:]
    return data[:central + 10] + method.to_bytes(2, "little") + data[central + 12:]


def _encrypted(data: bytes) -> bytes:
    """A zip whose member is flagged encrypted (bit 0 of its flags, in both headers)."""
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data = data[:local + 6] + b"\x01" + data[local + 7:]
    return data[:central + 8] + b"\x01" + data[central + 9:]


DAMAGED = [
    ("deflate.zip", lambda: _flip(_zip_bytes(zipfile.ZIP_DEFLATED), 47),
     " is corrupt or truncated: Error -3 while decompressing data: invalid distance too far back"),
    ("cut.tgz", lambda: gzip.compress(_tar_bytes("w"), mtime=0)[:-200],
     " is corrupt or truncated: Compressed file ended before the end-of-stream marker was "
     "reached"),
    ("crc.tgz", lambda: _flip(gzip.compress(_tar_bytes("w"), mtime=0), -6),
     " is corrupt or truncated: CRC check failed "),
    ("bad.txz", lambda: _flip(_tar_bytes("w:xz"), -30),
     " is corrupt or truncated: Corrupt input data"),
    ("bad.tar.bz2", lambda: _flip(_tar_bytes("w:bz2"), -3),
     " is corrupt or truncated: Invalid data stream"),
    ("method.zip", lambda: _method(_zip_bytes(), 99),
     " cannot be read: That compression method is not supported"),
    ("secret.zip", lambda: _encrypted(_zip_bytes()),
     ": member 'cat/1.png' rejected: encrypted (repack the archive without a password)"),
]


@pytest.mark.parametrize("name, build, reason", DAMAGED, ids=[d[0] for d in DAMAGED])
def test_a_damaged_archive_is_refused_with_its_reader_s_reason(tmp_path, name, build, reason):
    archive = tmp_path / name
    archive.write_bytes(build())
    with pytest.raises(SourceError) as err:
        verify_archive(archive, 100_000)
    assert str(err.value).startswith(f"archive {name}{reason}")
    assert refused(archive, tmp_path / "cache", max_bytes=100_000) == str(err.value)


def test_a_zip_name_flagged_utf8_that_is_not_is_named_by_its_bytes(tmp_path):
    raw = write_zip(tmp_path / "w.zip", [("cat/ab.png", PNG)]).read_bytes()
    flagged = tmp_path / "flag.zip"  # bit 11 of the flags (UTF-8 names), Latin-1 bytes
    flagged.write_bytes(raw.replace(b"cat/ab.png", b"cat/\xe9b.png").replace(
        b"\x14\x00\x00\x00\x00\x00", b"\x14\x00\x00\x08\x00\x00"))
    assert refused(flagged, tmp_path / "cache") == (
        "archive flag.zip: member b'cat/\\xe9b.png' rejected: the name is flagged UTF-8 but is "
        "not")


def test_archive_type_by_name_then_by_content(tmp_path):
    zipped = write_zip(tmp_path / "a.zip", [("cat/1.png", PNG)])
    tarred = write_tar(tmp_path / "a.tar", [("cat/1.png", PNG)])
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    named = {"D.ZIP": zipped, "d.TGZ": tarred, "d.tar.bz2": text, "d.txz": text}
    for name, source in named.items():  # the name decides, whatever is inside
        (tmp_path / name).write_bytes(source.read_bytes())
    assert {n: archives.archive_type(tmp_path / n) for n in named} == {
        "D.ZIP": "zip", "d.TGZ": "tar", "d.tar.bz2": "tar", "d.txz": "tar"}
    for content, kind in ((zipped, "zip"), (tarred, "tar"), (text, None)):
        download = tmp_path / "download"  # a URL need not end in .zip
        download.write_bytes(content.read_bytes())
        assert archives.archive_type(download) == kind


def test_the_extraction_is_built_beside_its_target_and_renamed_into_place(tmp_path,
                                                                          monkeypatch):
    """A hidden temporary folder in the cache folder (same file system: the rename is
    atomic): the target never holds a half-written tree."""
    cache = tmp_path / "cache"
    seen = []
    write_member = archives._write_member

    def watched(dest, member, src, budget):
        seen.append((dest, (cache / SHA[:16]).exists()))
        write_member(dest, member, src, budget)

    monkeypatch.setattr(archives, "_write_member", watched)
    archive = write_tar(tmp_path / "d.tar", [("cat/1.png", PNG), ("cat/2.png", PNG)])
    root = extract(archive, cache)
    assert [(d.parent.parent, d.parent.name.startswith(f".{SHA[:16]}."), d.name, there)
            for d, there in seen] == [(cache, True, archives.FILES, False)] * 2
    assert not seen[0][0].exists() and root == cache / SHA[:16] / archives.FILES


def test_bytes_are_counted_while_extracting_not_only_from_headers(tmp_path, monkeypatch):
    """A member whose reader yields more than its header declares (tarfile does not let one,
    so the reader is made to here) is refused by the count of bytes written."""
    real = tarfile.TarFile.extractfile

    def overlong(self, member):
        src = real(self, member)
        return io.BufferedReader(io.BytesIO(src.read() + b"\1" * 30_000))

    monkeypatch.setattr(tarfile.TarFile, "extractfile", overlong)
    archive = write_tar(tmp_path / "lying.tar", [("cat/1.png", PNG)])
    assert refused(archive, tmp_path / "cache", max_bytes=20_000) == (
        "archive lying.tar: member 'cat/1.png' rejected: extraction exceeded 20,000 bytes "
        "(max_bytes; the header understated the size)")
