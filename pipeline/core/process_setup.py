"""Process-wide set-up shared by the stages: seeds, deterministic ops, a quiet TensorFlow.

TensorFlow prints a screenful of C++ start-up lines on import (oneDNN, CUDA drivers,
absl's "All log messages before absl::InitializeLog()"), twice, because its two shared
libraries each log before absl is initialised, which ``TF_CPP_MIN_LOG_LEVEL`` cannot
filter. :func:`quiet_tensorflow` catches the first ``import tensorflow`` of the process,
however it happens (Keras, tf.data, ...), runs it with file descriptor 2 sent to a
temporary file, and passes on every line that is not that known noise; if TensorFlow
was imported first, it lists the devices under the same filter, which is when the CUDA
probe ("failed call to cuInit") logs on a machine without a GPU. Set
``PIPELINE_VERBOSE=1`` (or ``--verbose`` on a stage) to see everything again.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import os
import random
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

VERBOSE_ENV = "PIPELINE_VERBOSE"
# Start-up lines of TensorFlow on a CPU-only machine: information, not problems.
_NOISE = re.compile(
    r"absl::InitializeLog|oneDNN custom operations are on|Could not find cuda drivers"
    r"|failed call to cuInit|computation placer already registered|Unable to register cu"
    r"|TF-TRT Warning|This TensorFlow binary is optimized"
)


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy, TensorFlow and Keras, and ask TF for deterministic kernels.

    With op determinism on, TensorFlow raises on the few CPU ops that have no
    deterministic kernel instead of silently varying between runs.
    """
    import keras
    import numpy as np  # here: the always-changed stages (weights, ...) never need it
    import tensorflow as tf

    random.seed(seed)
    np.random.seed(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class _QuietTensorFlow(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` once, and imports it with its start-up noise filtered."""

    def find_spec(self, fullname, path, target=None):  # noqa: ANN001 - importlib's protocol
        if fullname != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: later imports are the cached module
        if verbose():
            return None
        # C++ log lines after start-up (cuInit, unknown NodeDef attributes) obey this one.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            real = spec.loader.exec_module

            def exec_module(module: ModuleType) -> None:
                with _filtered_stderr():
                    real(module)

            spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


class Captured:
    """What :func:`captured_fd2` caught: ``text``, once its block has ended."""

    text = ""


@contextmanager
def captured_fd2() -> Iterator[Captured]:
    """Send file descriptor 2 (C and C++ code's stderr, and Python's) to a temporary file
    during the block; its text is then the yielded object's ``text``."""
    said = Captured()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield said
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            said.text = tmp.read().decode("utf-8", errors="replace")


@contextmanager
def _filtered_stderr() -> Iterator[None]:
    """Send fd 2 to a temporary file; on exit, write back the lines that are not noise."""
    said = Captured()
    try:
        with captured_fd2() as said:
            yield
    finally:  # a failed import's lines too
        kept = [line for line in said.text.splitlines()
                if line.strip() and not _NOISE.search(line)]
        if kept:
            sys.stderr.write("\n".join(kept) + "\n")


def quiet_tensorflow() -> None:
    """Filter TensorFlow's start-up noise from this process (see the module docstring)."""
    if any(isinstance(f, _QuietTensorFlow) for f in sys.meta_path):
        return
    if "tensorflow" in sys.modules:
        # Imported before the package (a notebook, a user's script): too late for the
        # import's lines, but the CUDA probe ("failed call to cuInit") runs when devices
        # are first listed, so list them now, filtered.
        if not verbose():
            with _filtered_stderr():
                sys.modules["tensorflow"].config.list_physical_devices()
        return
    sys.meta_path.insert(0, _QuietTensorFlow())
