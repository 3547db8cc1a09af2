"""A run's results as the gate reads them, from the workspace or a git revision, checked.

A run is ``metrics/report.json`` (the recommendation), each model's
``metrics/evaluate/<model>.json``, ``reports/predictions/<model>.csv`` and card
``models/<model>.json``. Both sides of a comparison are read by the same code and checked
the same way: a file that is not what the pipeline writes (invalid JSON, a list where an
object belongs, an accuracy of ``"high"``, a CSV without its columns) is a PipelineError
naming the file (``HEAD:metrics/report.json`` for a committed one) and the value at fault.
"""

from __future__ import annotations

import io
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.evaluation import predictions
from pipeline.gating import revisions

log = logging.getLogger(__name__)
REPORT_METRICS = paths.METRICS / "report.json"
REPORT_KEYS = ("accuracy", "accuracy_low", "accuracy_high")
_JSON_TYPES = {list: "a list", str: "a string", int: "a number", float: "a number",
               bool: "a boolean", type(None): "null"}


@dataclass(frozen=True)
class Run:
    """One run's results: the report's metrics, each model's metrics, predictions and card."""

    report: dict
    metrics: dict[str, dict]
    predictions: dict[str, pd.DataFrame]
    cards: dict[str, dict]

    @property
    def recommended(self) -> str:
        return self.report["recommended"]

    def value(self, model: str, metric: str) -> float | None:
        found = self.metrics.get(model, {}).get(metric)
        if found is None and metric == "accuracy" and model in self.predictions:
            return float(self.predictions[model]["correct"].mean())
        return None if found is None else float(found)

    def classes(self) -> list[str] | None:
        """The classes the run's models tell apart: the recommended model's card (else any
        card), else the labels of its test predictions; None when nothing says."""
        for name in (self.recommended, *self.cards):
            listed = self.cards.get(name, {}).get("classes")
            if listed:
                return sorted(listed)
        labels = {str(x) for table in self.predictions.values() for x in table["label"]}
        return sorted(labels) or None


class Source:
    """Where a run's files are read from: the workspace (``sha`` None) or a commit."""

    def __init__(self, sha: str | None = None, rev: str | None = None) -> None:
        self.sha, self.rev = sha, rev

    def name(self, path: Path) -> str:
        return path.as_posix() if self.sha is None else f"{self.rev}:{path.as_posix()}"

    def text(self, path: Path) -> str | None:
        """The file's text; None when it is not there."""
        if self.sha is not None:
            found = revisions.show(self.sha, path)
        else:
            try:
                found = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                found = None
            except (OSError, UnicodeDecodeError) as err:
                raise PipelineError(f"{path}: cannot read ({err})") from None
        log.debug("gate: %s: %s", self.name(path), "read" if found is not None else "not there")
        return found

    def models(self) -> list[str]:
        """The models whose evaluation was committed at this revision (the workspace's are
        params.yaml's)."""
        if self.sha is None:
            raise ValueError("the workspace's models are params.yaml's, not a listing")
        names = revisions.listing(self.sha, paths.EVALUATIONS)
        return sorted(Path(n).stem for n in names if n.endswith(".json"))


def _object(text: str, where: str) -> dict:
    """``text`` as a JSON object, or a PipelineError naming ``where``."""
    try:
        found = json.loads(text)
    except json.JSONDecodeError as err:
        raise PipelineError(f"{where}: invalid JSON ({err.msg} at line {err.lineno}, "
                            f"column {err.colno})") from None
    if not isinstance(found, dict):
        raise PipelineError(f"{where}: expected a JSON object, got "
                            f"{_JSON_TYPES.get(type(found), type(found).__name__)}")
    return found


def _fraction(data: dict, key: str, where: str) -> None:
    """``data[key]`` must be a number in [0, 1] (a score), when there."""
    value = data.get(key)
    if value is None:
        return
    if (isinstance(value, bool) or not isinstance(value, int | float)
            or not math.isfinite(value) or not 0 <= value <= 1):
        raise PipelineError(f"{where}: {key} is {value!r}, not a number between 0 and 1")


def read_report(source: Source) -> dict | None:
    """metrics/report.json, checked; None when it is not there."""
    text = source.text(REPORT_METRICS)
    if text is None:
        return None
    where = source.name(REPORT_METRICS)
    report = _object(text, where)
    name = report.get("recommended")
    if not isinstance(name, str) or not name.strip():
        raise PipelineError(f"{where}: recommended is {name!r}, not a model name")
    for key in REPORT_KEYS:
        if key not in report:
            raise PipelineError(f"{where}: no {key}")
        _fraction(report, key, where)
    return report


def read_run(source: Source, models: list[str], metric: str) -> Run | None:
    """The run at ``source`` for ``models`` (and the model it recommends), every file
    checked; None when it has no metrics/report.json."""
    report = read_report(source)
    if report is None:
        return None
    metrics, preds, cards = {}, {}, {}
    for m in dict.fromkeys([*models, report["recommended"]]):
        file = paths.evaluation(m)
        if (text := source.text(file)) is not None:
            metrics[m] = _object(text, source.name(file))
            _fraction(metrics[m], metric, source.name(file))
        file = paths.predictions(m)
        if (text := source.text(file)) is not None:
            preds[m] = predictions.read(io.StringIO(text), source.name(file))
        file = paths.model_card(m)
        if (text := source.text(file)) is not None:
            cards[m] = _object(text, source.name(file))
            listed = cards[m].get("classes")
            if listed is not None and (not isinstance(listed, list)
                                       or not all(isinstance(c, str) for c in listed)):
                raise PipelineError(f"{source.name(file)}: classes is {listed!r}, not a list "
                                    "of class names")
    return Run(report, metrics, preds, cards)


def missing_evidence(run: Run, source: Source) -> list[str]:
    """The files the recommended model needs and lacks: its metrics, predictions, card."""
    name = run.recommended
    needed = {paths.evaluation(name): name in run.metrics,
              paths.predictions(name): name in run.predictions,
              paths.model_card(name): name in run.cards}
    return [source.name(p) for p, there in needed.items() if not there]
