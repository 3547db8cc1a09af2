"""Models side by side on the same test images, and the one params.yaml's rule picks.

Every model was scored on the same test images (pipeline.evaluation.predictions), so
each is compared with the best *paired*, image by image (McNemar's exact test), and
each accuracy gets a 95 % Wilson interval: on 60 test images one image is 1.7 points,
and the report says which gaps are noise. The recommendation follows the rule in
params.yaml's ``report`` section: the best on accuracy, or among the models not
significantly worse than it, the cheapest. The report (pipeline.evaluation.report)
renders this; the export stage exports its pick (pipeline.evaluation.choice).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from pipeline.evaluation.stats import Comparison, Recommendation, compare_to_best, recommend

MEASURED = "measured seconds: depends on the machine and its load"


@dataclass(frozen=True)
class ModelResult:
    """What the report knows of one model."""

    name: str
    family: str
    metrics: dict  # metrics/evaluate/<name>.json: the results
    card: dict  # models/<name>.json
    predictions: pd.DataFrame  # per test image, manifest order
    # reports/runs/evaluate/<name>.json: how the evaluation ran (speed, runtime, machine)
    # and the size of what ships
    facts: dict = field(default_factory=dict)

    def cost(self, kind: str) -> float:
        if kind == "inference_seconds":
            speed = self.facts.get("inference_images_per_second") or 0
            return 1000.0 / speed if speed else float("inf")
        if kind == "shipped_params":  # the evaluate stage counted what the export ships
            return float(self.facts.get(kind, float("inf")))
        return float(self.card.get(kind, float("inf")))

    @property
    def shipped(self) -> str:
        """The size of what ships, for the reason and the table: "94.4 MB"."""
        mb = self.facts.get("shipped_mb")
        return "size unknown" if mb is None else f"{megabytes(mb)} MB shipped"


def megabytes(mb: float) -> str:
    """A size in MB as the report writes it: one decimal, two significant digits below 1."""
    return f"{mb:.1f}" if mb >= 1 else f"{mb:.2g}"


@dataclass(frozen=True)
class Report:
    models: list[ModelResult]
    rows: list[Comparison]
    choice: Recommendation
    cost: str
    alpha: float

    @property
    def test_images(self) -> int:
        return len(self.models[0].predictions)

    def row(self, name: str) -> Comparison:
        return next(r for r in self.rows if r.name == name)

    def to_metrics(self) -> dict:
        """The few numbers `dvc exp show` and the gate compare runs on."""
        chosen = self.row(self.choice.model)
        return {
            "recommended": self.choice.model,
            "accuracy": round(chosen.accuracy, 4),
            "accuracy_low": round(chosen.low, 4),
            "accuracy_high": round(chosen.high, 4),
        }


def compare(models: list[ModelResult], cost: str, alpha: float) -> Report:
    """Pair every model with the best on the same test images, and apply the rule."""
    images = models[0].predictions["path"].tolist()
    for m in models[1:]:
        if m.predictions["path"].tolist() != images:
            raise ValueError(f"{m.name} was not scored on the same test images as "
                             f"{models[0].name}; re-run its evaluate stage")
    correct = {m.name: m.predictions["correct"].to_numpy(dtype=bool) for m in models}
    rows = compare_to_best(correct, alpha=alpha)
    choice = recommend(rows, {m.name: m.cost(cost) for m in models}, "accuracy", alpha,
                       notes={m.name: m.shipped for m in models})
    if cost.endswith("_seconds") and len(choice.candidates) > 1:  # the cost decided
        choice = replace(choice, reason=f"{choice.reason} The cost is {MEASURED}: a re-run "
                         "can recommend another of the tied models.")
    return Report(models, rows, choice, cost, alpha)
