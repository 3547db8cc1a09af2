"""The report's chart: accuracy with its interval against training seconds, a point a model."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.io import atomic_path
from pipeline.evaluation.comparison import Report


def accuracy_vs_compute(report: Report, path: Path) -> None:
    """Accuracy (with its interval) against training seconds, one point per model, as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for m in report.models:
        r = report.row(m.name)
        x = max(float(m.card.get("train_seconds", 0.0)), 0.1)
        colour = "#3a7d44" if m.name == report.choice.model else "#4a6fa5"
        ax.errorbar([x], [100 * r.accuracy],
                    yerr=[[100 * (r.accuracy - r.low)], [100 * (r.high - r.accuracy)]],
                    fmt="o", color=colour, capsize=4)
        ax.annotate(m.name, (x, 100 * r.accuracy), textcoords="offset points", xytext=(7, 4))
    ax.set_xscale("log")
    ax.set_xlabel("training time (s, log scale)")
    ax.set_ylabel("test accuracy % (95 % CI)")
    ax.set_title(f"Accuracy against training compute ({report.test_images} test images)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", metadata={"Software": None})
    plt.close(fig)
