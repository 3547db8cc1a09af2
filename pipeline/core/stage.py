"""The shell around each stage script: ``--help``, params, and known failures as one line.

Every script in ``stages/`` is ``stage.run(main, stage.parser(__doc__))``: its docstring
(what it reads and writes) is its ``--help``, which exits 0 before anything is read or
written; an unknown argument is an error, not a run; a :class:`PipelineError` (bad params,
data, weights) prints one ``error:`` line and exits 2. Any other exception prints one
line naming the stage, the exception and the file at hand, exits 1, and keeps its
traceback in ``.cache/logs/<stage>.log`` (``--verbose`` shows it instead), after what other
libraries logged during the run, which that file keeps rather than the terminal.
``--verbose`` and ``-q`` set how much the stage says (pipeline/core/logs.py).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pipeline.core import logs
from pipeline.core.errors import PipelineError
from pipeline.core.io import write_text
from pipeline.core.params import load
from pipeline.core.process_setup import verbose

log = logging.getLogger(__name__)

SIGTERM_EXIT = 128 + signal.SIGTERM  # the shell's convention for "killed by SIGTERM"
# <stage>.log: what the libraries said during the stage's last run (TensorFlow's notices,
# pipeline.core.logs), then the traceback of an unexpected failure
LOGS = Path(".cache/logs")


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help is the stage's docstring, with ``--verbose`` and
    ``-q``."""
    summary, _, details = (doc or "").strip().partition("\n")
    out = argparse.ArgumentParser(
        prog=f"python {Path(sys.argv[0]).as_posix()}",
        description=summary,
        epilog=details.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    logs.add_flags(out)
    return out


def run(main: Callable[..., int | None], args: argparse.ArgumentParser) -> None:
    """Parse the command line, load and validate params.yaml, call ``main(params, **args)``.

    SIGTERM (what `kill`, job schedulers and CI runners send to stop a run) would end
    Python at once, skipping every ``finally:``; the atomic writers in pipeline.core.io
    would then leave their temporary files beside the outputs. Raising SystemExit instead
    unwinds the stack like Ctrl-C does, so those files are removed and no output is left
    half written. ``main`` may return an exit status (validate's 1 on bad data).
    """
    options = vars(args.parse_args())
    verbosity = options.pop("verbosity")
    logs.configure(verbosity, library_log=LOGS / f"{_stage_name(options)}.log")
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        params = load()
        log.debug("%s: params.yaml read; options %s", _stage_name(options), options)
        status = main(params, **options)
    except (PipelineError, FileNotFoundError) as err:
        log.error("error: %s", err)
        sys.exit(2)
    except Exception as err:  # a failure nobody foresaw: one line, the traceback kept
        if verbose():
            raise
        log.error("%s", unexpected(err, _stage_name(options)))
        sys.exit(1)
    sys.exit(status or 0)


def _stage_name(options: dict) -> str:
    """``finetune@resnet50`` for ``stages/finetune.py resnet50``, as dvc.yaml names it."""
    name = Path(sys.argv[0]).stem
    given = [str(v) for v in options.values() if isinstance(v, str)]
    return f"{name}@{given[0]}" if given else name


def unexpected(err: BaseException, stage: str) -> str:
    """The one line for an exception no stage foresaw; its traceback goes to a log file.

    The message names the stage, the exception and the file at hand (an OSError's own
    file name, else the innermost path a frame of the traceback was working on).
    """
    log_file = LOGS / f"{stage}.log"
    text = "".join(traceback.format_exception(err))
    try:  # after what the libraries said in this run: the same file (stage.run names it)
        if logs.to_library_log(text) is None:
            write_text(log_file, text)
        kept = f"traceback in {log_file}"
    except OSError:
        kept = "traceback not saved"
    at = _file_at_hand(err)
    where = f" (file: {at})" if at else ""
    said = " ".join(str(err).split()) or "no message"
    return (f"error: {stage}: unexpected {type(err).__name__}: {said}{where}; {kept}, or "
            f"run `python {Path(sys.argv[0]).as_posix()} --verbose` to see it")


def _file_at_hand(err: BaseException) -> str | None:
    filename = getattr(err, "filename", None)
    if filename is not None:
        return shown_path(filename)
    tb = err.__traceback__
    frames = []
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):  # innermost first: the file being read when it failed
        for name in _PATH_NAMES:
            value = frame.f_locals.get(name)
            if isinstance(value, Path | str | bytes):
                return shown_path(value)
    return None


_PATH_NAMES = ("path", "file", "filename", "target", "archive", "src", "dest")


def shown_path(value: str | bytes | os.PathLike) -> str:
    """A path as it can be printed on one line, whatever bytes its name holds."""
    raw = os.fsencode(value)
    try:
        return repr(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return repr(raw)
