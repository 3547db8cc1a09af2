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

Other libraries' records (TensorFlow's deprecation notices, tf2onnx's, absl's) are not the
user's to read: a stage writes them to its log, ``.cache/logs/<stage>.log``, and shows
only their errors (``--verbose`` shows them all); a command without a log shows their
warnings on stderr, as Python would. Either way they are written once: the root logger
holds this module's handler, so that a library calling ``logging.basicConfig()`` (absl
does on its first record) adds no second handler that would print every first-party
line again as ``INFO:__main__:...``. :func:`native_stderr` does the same for what C++
libraries write straight to file descriptor 2 (TFLite's converter and interpreter).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from pipeline.core.process_setup import VERBOSE_ENV, Captured, captured_fd2, verbose

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


class _LibraryLog(logging.FileHandler):
    """A stage's log of library records: opened, and emptied, at this run's first record,
    so that it holds one run (the last that had anything to say) and a run that says
    nothing writes nothing (a refused run changes no file)."""

    def __init__(self, path: Path) -> None:
        # A library may log a file name that is not UTF-8: escaped, never a logging error.
        super().__init__(path, mode="w", encoding="utf-8", delay=True,
                         errors="backslashreplace")

    def _open(self) -> TextIO:
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


class _Libraries(logging.Filter):
    """Records of other libraries' loggers: first-party ones have handlers of their own."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(record.name == n or record.name.startswith(n + ".") for n in LOGGERS)


class _Below(logging.Filter):
    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < self.level


def configure(verbosity: int = NORMAL, *, info: str = "stdout",
              library_log: Path | None = None) -> None:
    """Route the first-party loggers for ``verbosity`` (QUIET, NORMAL or VERBOSE), and
    other libraries' records to ``library_log`` (see the module docstring).

    ``info`` is the stream of information and debug lines: "stdout", or "stderr" for a
    command whose stdout is its result (``pipeline.predict``'s table). ``library_log``
    (a stage's ``.cache/logs/<stage>.log``) receives the libraries' warnings and errors
    (emptied at the first of a run); only the errors reach stderr then, unless verbose.
    Calling it again replaces the earlier set-up.
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
    _route_libraries(verbosity, library_log)


def _route_libraries(verbosity: int, library_log: Path | None) -> None:
    """The root logger's handlers: every library record once, to the log or stderr."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if any(isinstance(f, _Libraries) for f in h.filters)]:
        root.removeHandler(old)
        old.close()
    shown = _StdStream("stderr")
    shown.setFormatter(logging.Formatter("%(message)s"))  # as Python's last resort shows them
    shown.setLevel(logging.WARNING if library_log is None or verbosity >= VERBOSE
                   else logging.ERROR)
    handlers: list[logging.Handler] = [shown]
    if library_log is not None:
        kept = _LibraryLog(library_log)
        kept.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(kept)
    for handler in handlers:
        handler.addFilter(_Libraries())
        root.addHandler(handler)
    # TensorFlow gives its logger a stderr handler of its own when it first logs while the
    # root logger has none (an import before this set-up): the root's handlers route its
    # records now, and that one would print each again.
    tensorflow = logging.getLogger("tensorflow")
    for own in [h for h in tensorflow.handlers if type(h) is logging.StreamHandler]:
        tensorflow.removeHandler(own)


def to_library_log(text: str) -> Path | None:
    """Append ``text`` (a stage's traceback) to this run's library log, after what the
    libraries said: the file as :func:`configure` named it, or None when it named none."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _LibraryLog):
            handler.acquire()
            try:
                if handler.stream is None:
                    handler.stream = handler._open()
                handler.stream.write(text)
                handler.flush()
            finally:
                handler.release()
            return Path(handler.baseFilename)
    return None


@contextmanager
def native_stderr(what: str) -> Iterator[None]:
    """Send what C++ code writes to file descriptor 2 during the block (``what``: the call,
    for the log) to the library records instead of the terminal: a stage's log, stderr
    when verbose. TensorFlow's own C++ lines obey ``TF_CPP_MIN_LOG_LEVEL``; TFLite's
    converter ("fully_quantize: 0, ...") and interpreter ("Created TensorFlow Lite XNNPACK
    delegate") do not. Python's own writes to stderr in the block are caught too: keep
    the block to the one call."""
    if verbose():
        yield
        return
    said = Captured()
    try:
        with captured_fd2() as said:
            yield
    finally:  # a failed call's lines too
        if said.text.strip():
            logging.getLogger("native").warning("%s said on stderr:\n%s", what,
                                                said.text.rstrip())


def add_flags(parser: argparse.ArgumentParser) -> None:
    """``--verbose`` and ``-q``/``--quiet`` (one or the other), as ``args.verbosity``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--verbose", dest="verbosity", action="store_const", const=VERBOSE,
                       default=NORMAL, help="also show debug detail, TensorFlow's start-up "
                       f"lines and the traceback of an unexpected error ({VERBOSE_ENV}=1)")
    group.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET,
                       help="show warnings and errors only")
