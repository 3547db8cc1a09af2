"""The source stage: data.source fingerprinted without opening special files, so DVC never
hashes the folder; and stage.run's one line for a failure nobody foresaw."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import PNG, ROOT, STAGES, params, sh, snapshot, write_params

from pipeline.core.params import ParamsError
from pipeline.data import images, scan, sources
from pipeline.data.source_errors import SourceError
from pipeline.data.sources import fingerprint as fp


def _folder(root: Path) -> Path:
    for name in ("cat/1.png", "cat/2.png", "dog/1.png", "dog/2.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(PNG + name.encode())
    return root


def _specials(root: Path) -> socket.socket:
    """A FIFO and a listening-free socket file in the class folders; the socket to close."""
    os.mkfifo(root / "cat" / "pipe.png")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "dog" / "sock.png"))
    return sock


def test_special_files_are_skipped_counted_and_named(tmp_path):
    root = _folder(tmp_path / "photos")
    with _specials(root):
        found = scan.scan(root)
        record = fp.folder_fingerprint(root, tmp_path / "cache")
    assert sorted(p for p, _ in found.images) == ["cat/1.png", "cat/2.png", "dog/1.png",
                                                  "dog/2.png"]
    assert found.skipped["special file"] == 2
    assert sorted(found.special) == ["'cat/pipe.png' (FIFO)", "'dog/sock.png' (socket)"]
    assert sorted(record["special"]) == sorted(found.special) and record["files"] == 4


def test_fingerprint_follows_content_not_mtimes_and_reads_only_changes(tmp_path, monkeypatch):
    root, cache = _folder(tmp_path / "photos"), tmp_path / "cache"
    first = fp.folder_fingerprint(root, cache)
    reads: list[str] = []
    real = fp.file_digest
    monkeypatch.setattr(fp, "file_digest", lambda p: reads.append(p) or real(p))
    assert fp.folder_fingerprint(root, cache) == first and reads == []  # a stat walk only
    os.utime(root / "cat" / "1.png", ns=(1, 1))  # touched, same bytes
    assert fp.folder_fingerprint(root, cache) == first and len(reads) == 1
    (root / "cat" / "1.png").write_bytes(PNG + b"changed")
    changed = fp.folder_fingerprint(root, cache)
    assert changed["sha256"] != first["sha256"] and len(reads) == 2
    (root / "cat" / "1.png").rename(root / "cat" / "3.png")  # renamed: a new fingerprint
    assert fp.folder_fingerprint(root, cache)["sha256"] != changed["sha256"]


def test_url_fingerprint_is_the_pin_without_a_request(tmp_path, no_network):
    data = params({"data.source": "https://example.org/flowers.tgz", "data.sha256": "A" * 64,
                   "data.cache": str(tmp_path / "c")}).data
    assert fp.fingerprint(data) == {"source": "https://example.org/flowers.tgz",
                                    "kind": "url", "sha256": "a" * 64}
    assert no_network == []


# A fresh interpreter that tries each data.source with the source stage's fingerprint and
# with prepare's resolve, so that a hang (reading /proc) ends at the subprocess timeout.
PROBE = """
import json, sys, yaml
from pipeline.core.params import parse
from pipeline.data.source_errors import SourceError
from pipeline.data.sources import resolve
from pipeline.data.sources.fingerprint import fingerprint
raw = yaml.safe_load(open("params.yaml"))
out = {}
for spec in sys.argv[1:]:
    raw["data"]["source"] = spec
    data = parse(raw).data
    for stage, call in (("source", fingerprint), ("prepare", resolve)):
        try:
            call(data)
            out[f"{stage} {spec}"] = "used"
        except SourceError as err:
            out[f"{stage} {spec}"] = str(err)
print(json.dumps(out))
"""


def test_system_trees_and_special_files_are_refused_at_once(tmp_path):
    """/proc used to hang the source stage (its files never end); /sys failed on the first
    unreadable file; a FIFO named .tar waited for a writer for ever. Each is now one line,
    from both stages, before anything is opened."""
    os.mkfifo(tmp_path / "photos.tar")
    refused = {"/proc": "'/proc' is in /proc, a proc file system (a system tree), not data",
               "/sys": "'/sys' is in /sys, a sysfs file system (a system tree), not data",
               "/": "'/' holds /proc, a proc file system (a system tree), not data",
               "/dev": "'/dev' ",  # devtmpfs, or a tmpfs holding devpts in a container
               "/dev/null": "'/dev/null' is a character device, not a folder or an archive",
               str(tmp_path / "photos.tar"): "photos.tar' is a FIFO, not a folder or an archive"}
    write_params(tmp_path, {"data.cache": str(tmp_path / "cache")})
    start = time.monotonic()
    probe = subprocess.run([sys.executable, "-c", PROBE, *refused, "/run"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False,
                           env=os.environ.copy())
    assert probe.returncode == 0, probe.stderr
    assert time.monotonic() - start < 30
    found = json.loads(probe.stdout)
    for spec, why in refused.items():
        for stage in ("source", "prepare"):
            message = found[f"{stage} {spec}"]
            assert message.startswith("data.source: ") and why in message, (stage, message)
            assert "\n" not in message
    # /run is a tmpfs of sockets and FIFOs (never opened): refused or used, never hung.
    assert "\n" not in found["source /run"] and "\n" not in found["prepare /run"]
    assert (tmp_path / "photos.tar").exists() and not (tmp_path / "cache").exists()


def test_the_source_stage_refuses_proc_in_one_line_and_exit_2(tmp_path):
    write_params(tmp_path, {"data.source": "/proc"})
    proc = subprocess.run([sys.executable, str(STAGES / "source.py")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False,
                          env=os.environ.copy())
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: data.source: '/proc' is in /proc, a proc file system (a system tree), not "
        "data: set data.source to a folder of class folders or an archive"], proc.stderr
    assert not (tmp_path / "data").exists()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _data(source: Path, tmp_path: Path, root: str | None = None):
    return params({"data.source": str(source), "data.root": root,
                   "data.cache": str(tmp_path / "cache")}).data


def test_a_link_to_a_folder_outside_the_source_is_refused_by_both_stages(tmp_path):
    """The issue's case: data.root named a link inside the source to a folder outside it.
    prepare read the images there, and an image added there never changed the
    fingerprint. A link to a folder outside is now refused by the source stage (wherever
    it is) and by prepare (data.root, a class folder), naming it; the user's files stay."""
    elsewhere = _folder(tmp_path / "elsewhere" / "set")
    source = _folder(tmp_path / "photos" / "main")
    (source.parent / "set").symlink_to(elsewhere)
    before = snapshot(tmp_path / "elsewhere"), _files(tmp_path / "photos")
    data = _data(source.parent, tmp_path, root="set")
    outside = (f"'set' is a symbolic link to '{elsewhere}', a folder outside the source "
               f"'{source.parent}', where nothing is read (the source stage's fingerprint "
               "would not see it change): replace the link by that folder (or a bind mount), "
               "or set data.source to a folder holding both")
    with pytest.raises(SourceError) as err:
        fp.fingerprint(data)
    assert str(err.value) == f"data.source: {outside}"
    with pytest.raises(SourceError) as err:
        sources.resolve(data)
    assert str(err.value) == f"data.root: {outside}"
    (source.parent / "set").unlink()
    (source / "owl").symlink_to(elsewhere / "cat")  # a class folder
    data = _data(source.parent, tmp_path, root="main")
    with pytest.raises(SourceError, match=rf"^data\.source: 'main/owl' is a symbolic link to "
                                          rf"'{re.escape(str(elsewhere / 'cat'))}', a folder "
                                          rf"outside the source"):
        fp.fingerprint(data)
    with pytest.raises(SourceError, match=r"^data\.source: class folder 'owl' is a symbolic "
                                          r"link to .*, a folder outside the data folder"):
        scan.scan(sources.resolve(data).root)
    (source / "owl").unlink()
    assert (snapshot(tmp_path / "elsewhere"), _files(tmp_path / "photos")) == before


def test_a_link_to_an_image_outside_is_never_opened_and_rejected(tmp_path, monkeypatch):
    """An image link leading out is not refused: prepare rejects that one image (as
    data.images.bad says) and the fingerprint records where it points, neither reads it."""
    elsewhere = _folder(tmp_path / "elsewhere")
    source = _folder(tmp_path / "photos")
    (source / "cat" / "9.png").symlink_to(elsewhere / "dog" / "1.png")
    data = _data(source, tmp_path)
    read: list[str] = []
    real = fp.file_digest
    monkeypatch.setattr(fp, "file_digest", lambda p: read.append(p) or real(p))
    first = fp.fingerprint(data)
    assert first["files"] == 4 and not [p for p in read if p.endswith("9.png")]
    (elsewhere / "dog" / "1.png").write_bytes(PNG + b"changed")  # not read, not covered
    assert fp.fingerprint(data) == first
    (source / "cat" / "9.png").unlink()
    (source / "cat" / "9.png").symlink_to(elsewhere / "dog" / "2.png")  # where it points is
    assert fp.fingerprint(data)["sha256"] != first["sha256"]
    found = scan.scan(source)
    assert "cat/9.png" in [p for p, _ in found.images]
    everything = params()
    rows = images.inspect_all(source, ["cat/9.png"], images.ImagePolicy.from_params(
        everything.data.images, everything.validate_), workers=1)
    assert rows["issue"].tolist() == ["symbolic link outside the data folder"]


def test_links_inside_the_source_are_followed_and_fingerprinted_where_they_lead(tmp_path):
    source = _folder(tmp_path / "photos")
    for name in ("owl_a/1.png", "owl_b/1.png", "owl_b/2.png"):
        (tmp_path / "extra" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "extra" / name).write_bytes(PNG + name.encode())
    (tmp_path / "extra").rename(source / ".extra")  # hidden: not a class, but in the tree
    (source / "owl").symlink_to(".extra/owl_a")
    (source / "cat" / "same.png").symlink_to("../dog/1.png")
    (source / "cat" / "gone.png").symlink_to("../nowhere.png")  # broken: skipped, counted
    data = _data(source, tmp_path)
    first = fp.fingerprint(data)
    found = scan.scan(sources.resolve(data).root)
    assert sorted(p for p, _ in found.images) == [
        "cat/1.png", "cat/2.png", "cat/same.png", "dog/1.png", "dog/2.png", "owl/1.png"]
    assert found.skipped["broken symbolic link"] == 1
    (source / "owl").unlink()
    (source / "owl").symlink_to(".extra/owl_b")  # the same tree, another class folder read
    second = fp.fingerprint(data)
    assert second["sha256"] != first["sha256"]
    assert len(scan.scan(source).images) == 7
    (source / ".extra" / "owl_b" / "3.png").write_bytes(PNG + b"new")  # noticed
    third = fp.fingerprint(data)
    assert third["sha256"] != second["sha256"]
    (source / "cat" / "gone.png").unlink()
    (source / "cat" / "gone.png").symlink_to("../elsewhere.png")  # still broken, retargeted
    assert fp.fingerprint(data)["sha256"] != third["sha256"]


def test_loops_and_odd_paths_are_one_line_errors(tmp_path):
    source = _folder(tmp_path / "photos")
    (source / "all").symlink_to(".")  # a class folder holding the source: read twice
    data = _data(source, tmp_path)
    loop = "'all' is a symbolic link to '.', a folder that holds it (a loop): remove the link"
    with pytest.raises(SourceError, match=rf"^data\.source: {re.escape(loop)}$"):
        fp.fingerprint(data)
    with pytest.raises(SourceError, match=rf"^data\.source: class folder {re.escape(loop)}$"):
        scan.scan(source)
    (source / "all").unlink()
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    (tmp_path / "dangling").symlink_to("no such folder")
    for spec, why in (("a", "is a symbolic link loop"),
                      ("dangling", "does not exist (a broken symbolic link to 'no such folder')")):
        for call in (fp.fingerprint, sources.resolve):
            with pytest.raises(SourceError, match=rf"^data\.source: '.*{spec}' {re.escape(why)}"):
                call(_data(tmp_path / spec, tmp_path))
    # A source that is a link to a folder: the folder it leads to is the source.
    (tmp_path / "current").symlink_to(source)
    info = sources.resolve(_data(tmp_path / "current", tmp_path))
    assert info.root == tmp_path / "current" and info.tree == source
    assert fp.fingerprint(_data(tmp_path / "current", tmp_path))["files"] == 4
    for root in ("..", "../photos", "/etc", "cat/../.."):
        with pytest.raises(ParamsError, match=r"data\.root: .*a sub-folder of data\.source"):
            _data(source, tmp_path, root=root)


def test_the_source_stage_never_shows_nor_records_a_password(tmp_path, monkeypatch, caplog,
                                                             no_network):
    import runpy

    # By path, as DVC runs it: `stages` is not a package on sys.path.
    stage = runpy.run_path(str(STAGES / "source.py"))
    monkeypatch.chdir(tmp_path)
    url = "https://alice:s3cret@example.org/flowers.tgz"
    with caplog.at_level("INFO"):
        stage["main"](params({"data.source": url, "data.sha256": "a" * 64}))  # pinned: none
    said = [record.getMessage() for record in caplog.records]
    shown = "https://alice:***@example.org/flowers.tgz"
    assert said == [
        "warning: data.source holds credentials (user:password@): the pipeline never shows or "
        "stores them, but params.yaml and dvc.lock are in git; put them in ~/.netrc instead "
        "(docs/data-sources.md)",
        f"source: {shown} (url): sha256 aaaaaaaaaaaa -> data/source_fingerprint.json"]
    written = (tmp_path / "data" / "source_fingerprint.json").read_text()
    assert json.loads(written)["source"] == shown
    assert "s3cret" not in "".join(said) + written and no_network == []


def test_a_missing_or_special_source_is_refused_by_the_source_stage(tmp_path):
    """Not recorded as "unusable" for prepare to refuse: DVC would update dvc.lock, then
    remove prepare's outputs before prepare ran. Refused by `source`, whose output DVC
    does not remove first (persist), so a refused source changes nothing."""
    from helpers import params, run_stage

    from pipeline.data.source_errors import SourceError

    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for name, says in [("no such photos", "does not exist"),
                       ("gone", "does not exist (a broken symbolic link to ")]:
        data = params({"data.source": str(tmp_path / name),
                       "data.cache": str(tmp_path / "cache")}).data
        with pytest.raises(SourceError, match=rf"^data\.source: '.*{name}' {re.escape(says)}"):
            fp.fingerprint(data)
    os.mkfifo(tmp_path / "pipe")  # asked before anything is opened: never waits for a writer
    with pytest.raises(SourceError, match=r"pipe' is a FIFO, not a folder or an archive"):
        fp.fingerprint(params({"data.source": str(tmp_path / "pipe"),
                               "data.cache": str(tmp_path / "cache")}).data)
    project = tmp_path / "project"
    write_params(project, {"data.source": "no such photos"})
    (project / "data").mkdir()
    (project / "data/source_fingerprint.json").write_text("the last fingerprint\n")
    run = run_stage(project, "source")
    assert run.returncode == 2
    assert run.stderr.splitlines() == ["error: data.source: 'no such photos' does not exist"]
    assert (project / "data/source_fingerprint.json").read_text() == "the last fingerprint\n"


def test_an_unforeseen_exception_is_one_line_with_the_traceback_kept(tmp_path):
    write_params(tmp_path)
    script = tmp_path / "stages" / "boom.py"
    script.parent.mkdir()
    script.write_text(
        '"""Stage boom: fails as nobody foresaw."""\n'
        "from pathlib import Path\n"
        "from pipeline.core import stage\n"
        "def main(params):\n"
        "    path = Path('data/odd.bin')\n"
        "    raise ZeroDivisionError('division by zero\\nsecond line')\n"
        "stage.run(main, stage.parser(__doc__))\n")
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=os.environ.copy(), check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "error: boom: unexpected ZeroDivisionError: division by zero second line (file: "
        "'data/odd.bin'); traceback in .cache/logs/boom.log, or run `python "
        f"{script.as_posix()} --verbose` to see it"]
    assert "Traceback" in (tmp_path / ".cache/logs/boom.log").read_text()
    verbose = subprocess.run([sys.executable, str(script), "--verbose"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=60, env=os.environ.copy(),
                             check=False)
    assert "Traceback" in verbose.stderr and verbose.returncode == 1


@pytest.mark.e2e
def test_dvc_status_and_repro_do_not_hang_on_a_fifo(tmp_path):
    """The real dvc, on a project whose data folder holds a FIFO and a socket: prepare runs,
    names them, and the user's folder is left as it was."""
    project = tmp_path / "project"
    for name in ("pipeline", "stages", "dvc.yaml", "pyproject.toml", ".dvc/config",
                 ".dvcignore", ".gitignore"):
        src, dst = ROOT / name, project / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            import shutil
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            dst.write_bytes(src.read_bytes())
    photos = tmp_path / "photos"
    from helpers import noise
    from PIL import Image
    for label in ("cat", "dog"):
        (photos / label).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(noise(32, 32, seed=i + 10 * len(label))).save(
                photos / label / f"{i}.png")
    write_params(project, {"data.source": str(photos), "sample.images_per_class": 2,
                           "sample.image_size": 32, "validate.min_per_class": 1,
                           "data.images.near_threshold": None})
    with _specials(photos):
        before = _snapshot(photos)
        sh(project, "git", "init", "-q")
        status = subprocess.run(["dvc", "status"], cwd=project, capture_output=True, text=True,
                                timeout=120, env=_env(project), check=False)
        assert status.returncode == 0, status.stderr
        repro = subprocess.run(["dvc", "repro", "prepare"], cwd=project, capture_output=True,
                               text=True, timeout=300, env=_env(project), check=False)
        assert repro.returncode == 0, repro.stdout + repro.stderr
        assert "2 special file(s) skipped, never opened" in repro.stderr
        assert "12 images of 2 classes" in repro.stdout
        again = subprocess.run(["dvc", "repro", "prepare"], cwd=project, capture_output=True,
                               text=True, timeout=120, env=_env(project), check=False)
        assert "Stage 'prepare' didn't change, skipping" in again.stdout, again.stdout
        assert _snapshot(photos) == before


def _snapshot(root: Path) -> dict[str, tuple]:
    """helpers.snapshot, without opening special files (reading a FIFO waits for ever)."""
    return {str(p): (p.lstat().st_mode, p.lstat().st_mtime_ns,
                     p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _env(project: Path) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    return os.environ | {"PATH": bindir + os.pathsep + os.environ["PATH"],
                         "PYTHONPATH": os.pathsep.join([str(project),
                                                        os.environ.get("PYTHONPATH", "")])}
