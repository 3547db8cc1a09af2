"""When $PROCLOG is set, every Python process the tests start appends its start and end
(wall-clock time, pid, working directory, argv) to that file: how a test sees when the
stages of queued experiments ran, which DVC does not report."""

from __future__ import annotations

import atexit
import json
import os
import sys
import time

ENV = "PROCLOG"


def _write(event: str) -> None:
    path = os.environ.get(ENV)
    if not path:
        return
    record = {"event": event, "time": time.time(), "pid": os.getpid(), "cwd": os.getcwd(),
              "argv": sys.argv}
    with open(path, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


def install() -> None:
    if os.environ.get(ENV):
        _write("start")
        atexit.register(_write, "end")


def read(path) -> list[dict]:
    with open(path, encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]
