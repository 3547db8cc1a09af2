"""The source stage: data.source fingerprinted without opening special files, so DVC never
hashes the folder; and stage.run's one line for a failure nobody foresaw."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PNG, ROOT, sh, write_params

from pipeline.data import scan
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
    from helpers import params

    data = params({"data.source": "https://example.org/flowers.tgz", "data.sha256": "A" * 64,
                   "data.cache": str(tmp_path / "c")}).data
    assert fp.fingerprint(data) == {"source": "https://example.org/flowers.tgz",
                                    "kind": "url", "sha256": "a" * 64}
    assert no_network == []


def test_a_missing_or_special_source_is_refused_by_the_source_stage(tmp_path):
    """Not recorded as "unusable" for prepare to refuse: DVC would update dvc.lock, then
    remove prepare's outputs before prepare ran. Refused by `source`, whose output DVC
    does not remove first (persist), so a refused source changes nothing."""
    from helpers import params, run_stage

    from pipeline.data.errors import SourceError
    from pipeline.data.local import check_local

    (tmp_path / "gone").symlink_to(tmp_path / "nowhere")
    for name, says in [("no such photos", "does not exist"),
                       ("gone", "does not exist (a broken symbolic link)")]:
        data = params({"data.source": str(tmp_path / name),
                       "data.cache": str(tmp_path / "cache")}).data
        with pytest.raises(SourceError, match=rf"^data\.source: '.*{name}' {re.escape(says)}"):
            fp.fingerprint(data)
    os.mkfifo(tmp_path / "pipe")  # what fingerprint asks before it opens anything
    with pytest.raises(SourceError, match=r"pipe' is a special file \(a FIFO, a socket, a "
                                          r"device\), not a folder"):
        check_local(str(tmp_path / "pipe"))
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
