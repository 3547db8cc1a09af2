"""The shell around each stage script: ``--help``, params, and known failures as one line.

Every script in ``stages/`` is ``stage.run(main, stage.parser(__doc__))``: its docstring
(what it reads and writes) is its ``--help``, which exits 0 before anything is read or
written; an unknown argument is an error, not a run; a :class:`PipelineError` (bad params,
data, weights) prints one ``error:`` line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from pipeline.core.errors import PipelineError
from pipeline.core.params import load
from pipeline.core.runtime import VERBOSE_ENV

SIGTERM_EXIT = 128 + signal.SIGTERM  # the shell's convention for "killed by SIGTERM"


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT)


def parser(doc: str | None) -> argparse.ArgumentParser:
    """An argument parser whose help is the stage's docstring, with ``--verbose``."""
    summary, _, details = (doc or "").strip().partition("\n")
    out = argparse.ArgumentParser(
        prog=f"python {Path(sys.argv[0]).as_posix()}",
        description=summary,
        epilog=details.strip() or None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    out.add_argument("--verbose", action="store_true",
                     help=f"show TensorFlow's start-up and C++ log lines ({VERBOSE_ENV}=1)")
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
    if options.pop("verbose"):
        os.environ[VERBOSE_ENV] = "1"
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        status = main(load(), **options)
    except (PipelineError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)
