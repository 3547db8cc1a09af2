"""Interrupted writes leave the previous output or none, never half of one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from helpers import write_params

from pipeline.core.io import atomic_dir, atomic_path, write_json


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"accura')
        raise RuntimeError("killed mid-write")
    assert target.read_text() == '{\n  "accuracy": 0.5\n}\n'
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_failed_folder_write_keeps_the_old_folder(tmp_path):
    target = tmp_path / "features"
    with atomic_dir(target) as out:
        (out / "train.npz").write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_dir(target) as out:
        (out / "train.npz").write_bytes(b"new, half")
        raise RuntimeError
    assert (target / "train.npz").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["features"]


def test_sigterm_during_a_stage_leaves_no_output(tmp_path):
    """What `kill` or a CI timeout does to a running stage: exit 143, nothing half-written."""
    write_params(tmp_path, {"seed": 1})
    script = tmp_path / "stage.py"
    script.write_text(textwrap.dedent("""
        import sys, time
        from pipeline.core import stage
        from pipeline.core.io import atomic_path

        def main(params):
            with atomic_path("model.keras", suffix=".keras") as tmp:
                tmp.write_bytes(b"partial")
                print("writing", flush=True)
                time.sleep(60)

        stage.run(main, stage.parser(None))
    """))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    assert time.monotonic() - start < 10
    assert sorted(os.listdir(tmp_path)) == ["params.yaml", "stage.py"]


def test_outputs_get_ordinary_permissions_not_mkstemps_private_ones(tmp_path):
    """A written output is readable by others (0644 under umask 022), like any file."""
    import os
    import stat

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        with atomic_dir(tmp_path / "out") as folder:
            (folder / "x.txt").write_text("x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "m.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o755
