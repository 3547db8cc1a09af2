"""How much the entry points say: ``configure(verbosity)``, called once by each of them.

Modules log through ``logging.getLogger(__name__)`` (a stage script's logger is
``__main__``); this routes those records as the pipeline has always printed them: the
message alone, information on stdout, warnings and errors on stderr, so the output of a
stage reads the same with or without logging. The levels:

- ``-q`` / ``--quiet`` (-1): warnings and errors only, no progress bars;
- normal (0): information too;
- ``--verbose`` (1): debug detail too, and what ``PIPELINE_VERBOSE=1`` has always shown
  (TensorFlow's start-up lines, the traceback of an unexpected failure).
  ``PIPELINE_VERBOSE=1`` in the environment (say, under ``dvc repro``) means the same.

Other libraries' loggers are left as Python leaves them (their warnings reach stderr).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TextIO

from pipeline.core.runtime import VERBOSE_ENV, verbose

QUIET, NORMAL, VERBOSE = -1, 0, 1
# The first-party loggers: the package's modules and the script being run.
LOGGERS = ("pipeline", "__main__")
_NO_BARS = "TQDM_DISABLE"  # tqdm reads its defaults from TQDM_* variables
_bars_hidden_by_quiet = False  # whether TQDM_DISABLE is -q's doing, not the user's
_LEVELS = {QUIET: logging.WARNING, NORMAL: logging.INFO, VERBOSE: logging.DEBUG}


class _StdStream(logging.StreamHandler):
    """A handler writing to ``sys.stdout`` or ``sys.stderr`` as they are at each record,
    not as they were at set-up (pytest's capture, a redirected stream)."""

    def __init__(self, name: str) -> None:
        logging.Handler.__init__(self)
        self._name = name

    @property
    def stream(self) -> TextIO:
        return getattr(sys, self._name)

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.setStream: ignored
        pass


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure(verbosity: int = NORMAL, *, info: str = "stdout") -> None:
    """Route the first-party loggers for ``verbosity`` (QUIET, NORMAL or VERBOSE).

    ``info`` is the stream of information and debug lines: "stdout", or "stderr" for a
    command whose stdout is its result (``pipeline.predict``'s table). Calling it again
    replaces the earlier set-up.
    """
    if verbosity >= VERBOSE:
        os.environ[VERBOSE_ENV] = "1"
    elif verbosity == NORMAL and verbose():
        verbosity = VERBOSE
    # Progress bars (tqdm, on stderr) are information too: -q hides them. tqdm reads
    # TQDM_* when first imported, which the entry points do after this (and children).
    # A user's own TQDM_DISABLE is theirs: only the value -q set is taken back.
    global _bars_hidden_by_quiet
    if verbosity <= QUIET:
        if _NO_BARS not in os.environ or _bars_hidden_by_quiet:
            os.environ[_NO_BARS] = "1"
            _bars_hidden_by_quiet = True
    elif _bars_hidden_by_quiet:
        os.environ.pop(_NO_BARS, None)
        _bars_hidden_by_quiet = False
    level = _LEVELS[max(QUIET, min(VERBOSE, verbosity))]
    plain = logging.Formatter("%(message)s")
    low = _StdStream(info)
    low.addFilter(_Below(logging.WARNING))
    high = _StdStream("stderr")
    high.setLevel(logging.WARNING)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for old in [h for h in logger.handlers if isinstance(h, _StdStream)]:
            logger.removeHandler(old)
        for handler in (low, high):
            handler.setFormatter(plain)
            logger.addHandler(handler)
        logger.setLevel(level)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` and ``-q``/``--quiet`` (one or the other), as ``args.verbosity``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--verbose", dest="verbosity", action="store_const", const=VERBOSE,
                       default=NORMAL, help="also show debug detail, TensorFlow's start-up "
                       f"lines and the traceback of an unexpected error ({VERBOSE_ENV}=1)")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET,
                       help="show warnings and errors only")
