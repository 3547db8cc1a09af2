"""What a user sees when a stage starts TensorFlow on a CPU-only machine: no start-up
lines (oneDNN, CUDA drivers, cuInit, absl), unless they ask for them."""

from __future__ import annotations

import os
import subprocess
import sys

from helpers import ROOT

from pipeline.core.process_setup import _NOISE, VERBOSE_ENV

FIRST_OP = "import tensorflow as tf; tf.constant(1.0) + 1; print('ran', flush=True)"


def stderr_of(code: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE_ENV)} | env
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environ,
                          capture_output=True, text=True, timeout=300, check=True)
    assert "ran" in proc.stdout
    return proc.stderr


def test_no_start_up_line_reaches_the_user():
    err = stderr_of("import pipeline; " + FIRST_OP)
    assert not [line for line in err.splitlines() if _NOISE.search(line)], err


def test_no_cuinit_line_when_tensorflow_was_imported_first():
    # Its import lines are out of reach then, but the CUDA probe at the first op (the
    # "E0000 ... failed call to cuInit" line) is not.
    err = stderr_of("import tensorflow; import pipeline; " + FIRST_OP)
    assert "cuInit" not in err, err


def test_verbose_shows_them_again():
    err = stderr_of("import pipeline; " + FIRST_OP, **{VERBOSE_ENV: "1"})
    assert _NOISE.search(err), "PIPELINE_VERBOSE=1 should let TensorFlow's lines through"
