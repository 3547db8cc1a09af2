"""The shell around each stage script: known failures become one clear line and exit 2."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from types import FrameType

from pipeline.config import ConfigError, load
from pipeline.manifest import DataSourceError
from pipeline.weights import WeightsError

KNOWN_ERRORS = (ConfigError, DataSourceError, WeightsError, FileNotFoundError)
SIGTERM_EXIT = 128 + signal.SIGTERM  # the shell's convention for "killed by SIGTERM"


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT)


def run(main: Callable[..., object], *args: str) -> None:
    """Load and validate params.yaml, call ``main(cfg, *args)``; print known errors tersely.

    SIGTERM (what `kill`, job schedulers and CI runners send to stop a run) would end
    Python at once, skipping every ``finally:``; the atomic writers in pipeline.io would
    then leave their temporary files beside the outputs. Raising SystemExit instead
    unwinds the stack like Ctrl-C does, so those files are removed and no output is left
    half written.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        main(load(), *args)
    except KNOWN_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
