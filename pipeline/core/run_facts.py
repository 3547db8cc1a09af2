"""Run facts: how a stage ran, kept apart from what it found.

A result (an accuracy, a calibration error, a format's agreement with the Keras model, a
count) comes out the same on every run of one commit on one machine. Results are the DVC
metrics (``metrics/``): `dvc exp show` compares experiments on them, and `dvc metrics diff`
between two runs of one commit prints nothing. What moves from run to run (seconds,
images/s, latencies), where a run happened (the machine, the runtime and precision, the
strategy) and how big what ships is (parameters, bytes) are run facts: one JSON file per
stage under ``reports/runs/``, at the place of the stage's metrics file
(``metrics/train/head.json`` -> ``reports/runs/train/head.json``), committed (``cache:
false`` outputs) but never declared as metrics. The report and the model card show them;
`dvc metrics diff main --targets metrics reports/runs` shows them beside the results
(docs/reproducibility.md).
"""

from __future__ import annotations

from pathlib import Path

from pipeline.core import machine, paths
from pipeline.core.io import read_json, write_json


def path(name: str) -> Path:
    """The run facts of ``name`` (``features``, ``train/head``, ``evaluate/wrn``, ...)."""
    return paths.run_record(name)


def write(name: str, facts: dict, found: dict | None = None) -> Path:
    """Write ``facts`` and the machine they were measured on (``found``: a
    ``machine.describe()`` already taken; this machine otherwise), atomically.

    The machine is one line (``machine.record``), as ``distribute`` and ``runtime`` are:
    `dvc metrics diff --targets reports/runs` shows a string and silently drops a list.
    """
    target = path(name)
    write_json(target, facts | {"machine": machine.record(found)})
    return target


def read(name: str) -> dict:
    """The run facts of ``name``."""
    return read_json(path(name))
