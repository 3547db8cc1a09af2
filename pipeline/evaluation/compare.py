"""The table that compares every model on the same test images."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.io import write_text

TABLE_COLUMNS = [
    ("accuracy", "accuracy", "{:.4f}"),
    ("macro_f1", "macro-F1", "{:.4f}"),
    ("trainable_params", "trainable params", "{:,}"),
    ("train_seconds", "train time (s)", "{:.1f}"),
    ("inference_images_per_second", "inference img/s", "{:.1f}"),
]


def comparison_table(results: dict[str, dict]) -> str:
    """Markdown table of the models side by side, best accuracy first."""
    header = "| model | " + " | ".join(title for _, title, _ in TABLE_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(TABLE_COLUMNS)
    rows = []
    for name, res in sorted(results.items(), key=lambda kv: -kv[1].get("accuracy", 0)):
        cells = [
            fmt.format(res[key]) if res.get(key) is not None else "n/a"
            for key, _, fmt in TABLE_COLUMNS
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(path: str | Path, results: dict[str, dict], test_images: int) -> str:
    table = comparison_table(results)
    write_text(path, f"# Test-split comparison ({test_images} images)\n\n{table}")
    return table
