"""How much the entry points say (pipeline/core/logs.py): ``-q`` keeps warnings and errors
only, ``--verbose`` adds debug lines, and normal output reads as it always has: the
message alone, information on stdout, warnings and errors on stderr."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import PNG, ROOT, write_params

from pipeline.core import logs
from pipeline.core.process_setup import VERBOSE_ENV


def _source(tmp_path: Path, *flags: str, **changes: object) -> subprocess.CompletedProcess:
    """The source stage on a folder holding one FIFO among its images (a warning)."""
    root = tmp_path / "photos"
    for name in ("cat/1.png", "dog/1.png"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(PNG + name.encode())
    if not (root / "cat" / "pipe.png").exists():
        os.mkfifo(root / "cat" / "pipe.png")
    write_params(tmp_path, {"data.source": str(root), "data.cache": str(tmp_path / "cache"),
                            **changes})
    env = {k: v for k, v in os.environ.items() if k != VERBOSE_ENV}
    return subprocess.run([sys.executable, str(ROOT / "stages" / "source.py"), *flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def test_a_stage_says_its_line_on_stdout_and_its_warning_on_stderr(tmp_path):
    done = _source(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"source: {tmp_path / 'photos'} (folder): 2 files")
    assert done.stderr == ("warning: data.source: 1 special file(s) skipped, never opened: "
                           "'cat/pipe.png' (FIFO)\n")
    assert "params.yaml read" not in done.stdout  # a debug line


def test_quiet_keeps_the_warning_and_the_error_line_only(tmp_path):
    done = _source(tmp_path, "-q")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("warning: data.source: 1 special file(s) skipped")

    failed = _source(tmp_path, "--quiet", **{"seed": -1})
    assert failed.returncode == 2
    assert failed.stdout == ""
    assert failed.stderr.startswith("error: ") and "seed" in failed.stderr


def test_verbose_adds_debug_lines(tmp_path):
    done = _source(tmp_path, "--verbose")
    assert done.returncode == 0, done.stderr
    assert "source: params.yaml read; options {}" in done.stdout.splitlines()
    assert done.stdout.splitlines()[-1].startswith("source: ")  # the normal line still there


def test_verbose_and_quiet_are_one_or_the_other(tmp_path):
    done = _source(tmp_path, "--verbose", "-q")
    assert done.returncode == 2
    assert "not allowed with argument" in done.stderr


@pytest.mark.parametrize(("verbosity", "shown"), [
    (logs.QUIET, ["warning", "error"]),
    (logs.NORMAL, ["info", "warning", "error"]),
    (logs.VERBOSE, ["debug", "info", "warning", "error"]),
])
def test_levels_and_streams(verbosity, shown, capsys, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "0")  # recorded, so the "1" set below is undone
    logs.configure(verbosity)
    log = logging.getLogger("pipeline.test_logs")
    for level in ("debug", "info", "warning", "error"):
        getattr(log, level)(level)
    out, err = capsys.readouterr()
    assert out.split() == [s for s in shown if s in ("debug", "info")]
    assert err.split() == [s for s in shown if s in ("warning", "error")]
    assert (os.environ.get(VERBOSE_ENV) == "1") == (verbosity == logs.VERBOSE)


def test_pipeline_verbose_in_the_environment_means_verbose(capsys, monkeypatch):
    monkeypatch.setenv(VERBOSE_ENV, "1")  # as under `dvc repro`, where no flag is passed
    logs.configure(logs.NORMAL)
    logging.getLogger("pipeline.test_logs").debug("detail")
    assert capsys.readouterr().out == "detail\n"


def test_quiet_hides_progress_bars():
    """tqdm reads TQDM_* when first imported, after the entry point has configured."""
    code = ("from pipeline.core import logs; logs.configure(logs.{}); "
            "from tqdm import tqdm; print(tqdm(range(3)).disable)")
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    shown = [subprocess.run([sys.executable, "-c", code.format(level)], capture_output=True,
                            text=True, env=env, check=True, timeout=60).stdout.strip()
             for level in ("QUIET", "NORMAL")]
    assert shown == ["True", "False"]


def test_a_users_own_tqdm_disable_is_kept_and_quiet_is_taken_back(monkeypatch):
    """-q hides progress bars and a later normal configure shows them again; a
    TQDM_DISABLE the user set stays whatever the verbosity."""
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(logs, "_bars_hidden_by_quiet", False)
    logs.configure(logs.QUIET)
    assert os.environ.get("TQDM_DISABLE") == "1"
    logs.configure(logs.NORMAL)
    assert "TQDM_DISABLE" not in os.environ
    monkeypatch.setenv("TQDM_DISABLE", "1")  # the user's
    for level in (logs.QUIET, logs.NORMAL, logs.VERBOSE):
        logs.configure(level)
        assert os.environ.get("TQDM_DISABLE") == "1", level


def _entry_point(tmp_path: Path, body: str, verbosity: str = "NORMAL"
                 ) -> subprocess.CompletedProcess:
    """``body`` after an entry point's set-up (a stage's: its library log in tmp_path), in
    a process of its own: pytest's handlers on the root logger would hide what a library's
    ``logging.basicConfig()`` does."""
    code = ("import logging, os, sys\nfrom pathlib import Path\nfrom pipeline.core import logs\n"
            f"logs.configure(logs.{verbosity}, library_log=Path('lib.log'))\n" + body)
    env = {k: v for k, v in os.environ.items() if k != VERBOSE_ENV}
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env=env, check=False)


def test_a_library_configuring_logging_prints_no_line_twice(tmp_path):
    """absl calls logging.basicConfig() on its first record; tf2onnx's TensorFlow calls
    log deprecation warnings: the stage's lines stay once each, the libraries' warnings go
    to the stage's log, their errors to stderr."""
    done = _entry_point(tmp_path, (
        "logging.basicConfig()  # absl.logging does this when the root logger has no handler\n"
        "logging.getLogger('__main__').info('export: result')\n"
        "logging.getLogger('tensorflow').warning('From x.py: f (from y) is deprecated')\n"
        "logging.getLogger('absl').error('a library error')\n"
        "logging.getLogger('pipeline.x').warning('warning: ours')\n"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == "export: result\n"
    assert done.stderr == "a library error\nwarning: ours\n"
    kept = (tmp_path / "lib.log").read_text()
    assert "WARNING tensorflow: From x.py: f (from y) is deprecated" in kept
    assert "ERROR absl: a library error" in kept and "result" not in kept


def test_a_library_log_holds_one_run_and_verbose_shows_it(tmp_path):
    """A run whose libraries say nothing writes nothing (a refused run changes no file);
    one that says something replaces the last; a traceback follows it in the same file."""
    (tmp_path / "lib.log").write_text("an earlier run's notice\n")
    quiet = _entry_point(tmp_path, "logging.getLogger('__main__').info('done')\n")
    assert quiet.stdout == "done\n"
    assert (tmp_path / "lib.log").read_text() == "an earlier run's notice\n"
    shown = _entry_point(tmp_path, ("logging.getLogger('tensorflow').warning('notice')\n"
                                    "logs.to_library_log('Traceback: boom\\n')\n"), "VERBOSE")
    assert shown.stderr == "notice\n"
    kept = (tmp_path / "lib.log").read_text()
    assert "earlier" not in kept and kept.endswith("WARNING tensorflow: notice\nTraceback: boom\n")


def test_what_cpp_code_writes_to_stderr_goes_to_the_log(tmp_path):
    """TFLite's converter and interpreter write to file descriptor 2 themselves."""
    done = _entry_point(tmp_path, (
        "with logs.native_stderr('the converter'):\n"
        "    os.write(2, b'fully_quantize: 0, inference_type: 6\\n')\n"
        "os.write(2, b'after the block\\n')\n"))
    assert done.returncode == 0, done.stderr
    assert done.stderr == "after the block\n"
    kept = (tmp_path / "lib.log").read_text()
    assert "the converter said on stderr:\nfully_quantize: 0, inference_type: 6" in kept
