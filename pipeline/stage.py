"""The shell around each stage script: known failures become one clear line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable

from pipeline.config import ConfigError, load
from pipeline.manifest import DataSourceError
from pipeline.weights import WeightsError

KNOWN_ERRORS = (ConfigError, DataSourceError, WeightsError, FileNotFoundError)


def run(main: Callable[..., object]) -> None:
    """Load and validate params.yaml, call ``main(cfg)``; print known errors without a trace."""
    try:
        main(load())
    except KNOWN_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
