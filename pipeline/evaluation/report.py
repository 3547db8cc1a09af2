"""The one page a person reads to choose a model: data, models side by side, honest error bars.

The comparison it shows is pipeline.evaluation.comparison's.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from pipeline.core import machine, paths
from pipeline.evaluation.comparison import MEASURED, Report, megabytes
from pipeline.evaluation.modelcard import weights_in_words

COST_TITLES = {
    "shipped_params": "parameters of the network that ships (a head with its backbone)",
    "train_seconds": f"training seconds ({MEASURED})",
    "trainable_params": "trainable parameters",
    "inference_seconds": f"seconds per 1,000 test images ({MEASURED})",
}


def provenance(report: Report, weights: dict | None) -> tuple[str, list[str]]:
    """(weights sentence, machine lines) for the report's first screen: where the scores came
    from (the machine each evaluation recorded; this one when none did)."""
    words = weights_in_words(weights) if weights else "The backbone's weights are not recorded."
    where: dict[str, list[str]] = {}
    for m in report.models:
        found = m.facts.get("machine")
        where.setdefault(machine.line(found) if found else "", []).append(m.name)
    if list(where) == [""]:
        return words, [f"Machine: not recorded by the evaluations; this report ran on "
                       f"{machine.line(machine.describe())}."]
    if len(where) == 1:
        return words, [f"Machine (every test score): {next(iter(where))}."]
    return words, [f"Machine ({', '.join(names)}): {line or 'not recorded'}."
                   for line, names in where.items()]


def _banner_md(report: Report, weights: dict | None) -> list[str]:
    words, machines = provenance(report, weights)
    loud = weights is not None and weights.get("source") == "random"
    return [f"> **⚠ {words}**" if loud else f"> {words}", ">",
            *[f"> {line}" for line in machines], ""]


def _banner_html(report: Report, weights: dict | None) -> str:
    words, machines = provenance(report, weights)
    loud = weights is not None and weights.get("source") == "random"
    colour = "#fdecea; border-left: 4px solid #b3261e" if loud else "#f4f4f4"
    head = f"<b>⚠ {html.escape(words)}</b>" if loud else html.escape(words)
    lines = "".join(f"<br><span class='muted'>{html.escape(x)}</span>" for x in machines)
    return f"<p style='background: {colour}; padding: .8em 1em'>{head}{lines}</p>"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _model_table(report: Report) -> list[list[str]]:
    header = ["model", "family", "accuracy % (95 % CI)", "macro-F1", "vs the best",
              "shipped params", "shipped MB", "trainable params", "train s",
              "inference img/s"]
    out = [header]
    order = sorted(report.models, key=lambda m: -report.row(m.name).accuracy)
    for m in order:
        r = report.row(m.name)
        star = " ★" if m.name == report.choice.model else ""
        out.append([
            f"{m.name}{star}", m.family,
            f"{_pct(r.accuracy)} ({_pct(r.low)}–{_pct(r.high)})",
            f"{m.metrics.get('macro_f1', float('nan')):.3f}", r.verdict,
            f"{m.facts['shipped_params']:,}" if "shipped_params" in m.facts else "–",
            megabytes(m.facts["shipped_mb"]) if "shipped_mb" in m.facts else "–",
            f"{int(m.card.get('trainable_params', 0)):,}",
            f"{m.card.get('train_seconds', float('nan')):.1f}",
            f"{m.facts.get('inference_images_per_second', float('nan')):.1f}",
        ])
    return out


def _recall_table(report: Report) -> list[list[str]]:
    classes = sorted(report.models[0].predictions["label"].unique())
    out = [["class", "test images", *[m.name for m in report.models]]]
    for c in classes:
        cells = [c]
        first = report.models[0].predictions
        cells.append(str(int((first["label"] == c).sum())))
        for m in report.models:
            p = m.predictions[m.predictions["label"] == c]
            cells.append(f"{p['correct'].mean():.2f}" if len(p) else "–")
        out.append(cells)
    return out


def _calibration_table(report: Report) -> list[list[str]]:
    """Temperature, ECE and NLL on the test split before -> after (pipeline.evaluation.
    calibration), and whether T lowered both; "–" for a model evaluated before calibration
    existed."""
    out = [["model", "temperature", "ECE", "ECE calibrated", "NLL", "NLL calibrated",
            "T lowered them?"]]
    keys = ("temperature", "ece", "ece_calibrated", "nll", "nll_calibrated")
    for m in report.models:
        out.append([m.name, *(f"{m.metrics[k]:.3f}" if k in m.metrics else "–" for k in keys),
                    _helped(m.metrics)])
    return out


def _helped(metrics: dict) -> str:
    if "ece" in metrics and "temperature" not in metrics:
        return "off (evaluate.calibration: none)"
    if not all(f"{k}_calibrated" in metrics and k in metrics for k in ("ece", "nll")):
        return "–"
    not_lower = [name for name, k in (("ECE", "ece"), ("NLL", "nll"))
                 if metrics[f"{k}_calibrated"] >= metrics[k]]
    return "yes" if not not_lower else f"NO: {' and '.join(not_lower)} not lower"


def calibration_warnings(report: Report, val_images: int | None) -> list[str]:
    """One line per model whose temperature did not lower its test ECE or NLL."""
    from pipeline.evaluation.calibration import unhelpful  # scipy, scikit-learn: when used

    found = ((m.name, unhelpful(m.metrics, val_images)) for m in report.models)
    return [f"{name}: {said}." for name, said in found if said]


def _confused_table(report: Report, top: int = 5) -> list[list[str]]:
    """Each model's most-confused pairs (true → predicted, count), most frequent first."""
    from pipeline.evaluation.confused import confused_pairs

    out = [["model", "wrong", f"most-confused pairs (true → predicted: count), top {top}"]]
    for m in report.models:
        pairs = confused_pairs(m.predictions).head(top)
        cells = ", ".join(f"{r.label} → {r.predicted}: {r.count}" for r in pairs.itertuples())
        out.append([m.name, str(int((~m.predictions["correct"]).sum())), cells or "none"])
    return out


CALIBRATION_NOTE = (
    "Temperature fitted on the validation split (NLL; none with params.yaml's "
    "evaluate.calibration: none); ECE (15 confidence bins) and NLL on "
    "the test split, lower is better. T > 1: the model was over-confident; T < 1: "
    "under-confident. Accuracy is unchanged. `python -m pipeline.predict` applies T "
    "(`--uncalibrated` to skip it)."
)
CONFUSED_NOTE = (
    "A pair several models share points at the data (look-alike classes); one a single "
    "model has, at that model. The sheet shows the recommended model's pairs."
)


def _md_errors(report: Report, pictures: dict[str, str], val_images: int | None) -> list[str]:
    """Calibration and the most-confused pairs, as Markdown lines; ``pictures`` as for
    :func:`markdown`; ``val_images``: the validation split the temperatures were fitted on."""
    return [
        "## Calibration",
        "",
        _md_table(_calibration_table(report)),
        "",
        *[f"> **⚠ {line}**\n" for line in calibration_warnings(report, val_images)],
        CALIBRATION_NOTE,
        "",
        *[f"![{c}]({p})\n" for c, p in pictures.items() if "reliab" in c.lower()],
        "## Most-confused classes",
        "",
        _md_table(_confused_table(report)),
        "",
        CONFUSED_NOTE,
        "",
        *[f"![{c}]({p})\n" for c, p in pictures.items() if "reliab" not in c.lower()],
    ]


def export_record(check: dict, facts: dict) -> dict:
    """What the formats table shows: the export's check of each format (reports/export.json)
    with that format's size and speed (its run facts, reports/runs/export.json) beside it."""
    measured = facts.get("formats", {})
    return check | {"formats": {name: row | measured.get(name, {})
                                for name, row in check["formats"].items()}}


def _formats_table(export: dict) -> list[list[str]]:
    """The export's record (:func:`export_record`) as rows: each format of
    artifacts/classifier/ against the Keras model."""
    out = [["format", "file", "size MB", "agreement %", "max abs Δp", "latency p50/p95 ms",
            "batch img/s", "status"]]
    for name, f in export["formats"].items():
        measured = "agreement" in f
        status = f["status"] + (f": {f['reason']}" if f.get("reason") else "")
        if measured and "accuracy_change" in f and name.endswith("int8") and not f.get("reason"):
            status += f" (accuracy {100 * f['accuracy_change']:+.1f} points)"
        out.append([
            name, f["file"],
            f"{f['size_bytes'] / 1e6:.1f}" if "size_bytes" in f else "–",
            f"{100 * f['agreement']:.1f}" if measured else "–",
            f"{f['max_abs_diff']:.1e}" if measured else "–",
            f"{f['latency_ms_p50']:.1f} / {f['latency_ms_p95']:.1f}"
            if "latency_ms_p50" in f else "–",
            f"{f['batch_images_per_second']:.1f}" if "batch_images_per_second" in f else "–",
            status,
        ])
    return out


def _formats_note(export: dict) -> str:
    return (f"{export['model']} in {paths.BEST}/ (temperature {export['temperature']:g}), each "
            f"format against model.keras on the same {export['test_images']} test images; "
            "latency of one image, throughput on batches, on the machine that ran the "
            f"export stage ({paths.RUNS / 'export.json'}; docs/deploy.md).")


def _md_table(rows: list[list[str]]) -> str:
    def row(cells: list[str]) -> str:  # a "|" inside a cell would end it (a reason's |dp|)
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([row(rows[0]), "|" + "---|" * len(rows[0]), *map(row, rows[1:])])


def _data_lines(data: dict) -> list[str]:
    splits = data.get("splits", {})
    lines = [
        f"{data.get('images', 0):,} images of {data.get('classes', 0)} classes "
        f"(train {splits.get('train', 0)}, val {splits.get('val', 0)}, "
        f"test {splits.get('test', 0)}).",
    ]
    dropped = data.get("dropped") or {}
    left_out = sum(dropped.values()) if isinstance(dropped, dict) else 0
    if left_out:
        lines.append(f"Left out: {dropped.get('bad', 0)} bad image(s) and "
                     f"{dropped.get('duplicates', 0)} duplicate(s) (data/dropped.csv).")
    if data.get("validation_warnings"):
        lines.append(f"Validation warnings: {data['validation_warnings']} "
                     "(reports/data_docs/index.html).")
    skipped = data.get("skipped") or {}
    if skipped:
        lines.append("Skipped files: " + ", ".join(f"{n} {why}" for why, n in skipped.items())
                     + ".")
    return lines


def _val_images(data: dict) -> int | None:
    return (data.get("splits") or {}).get("val")


def _verdicts(report: Report) -> list[str]:
    best = next(r for r in report.rows if r.p_value is None)
    out = []
    for r in report.rows:
        if r is best:
            continue
        if r.verdict.startswith("worse"):
            out.append(f"{best.name} is better than {r.name} ({r.verdict.split('(', 1)[1]}")
        else:
            out.append(f"{r.name} and {best.name} are "
                       + r.verdict.replace(f"from {best.name} ", "", 1))
    return out


def markdown(report: Report, data: dict, pictures: dict[str, str],
             data_pictures: dict[str, str] | None = None,
             error_pictures: dict[str, str] | None = None, weights: dict | None = None,
             export: dict | None = None) -> str:
    """The report as Markdown; ``pictures`` (of the models, shown after their table),
    ``data_pictures`` (after the data) and ``error_pictures`` (reliability diagrams, then
    the confused pairs) map a caption to a path relative to the page; ``weights``
    (data/weights.json) heads the page with where the numbers came from; ``export``
    (:func:`export_record`) gives the formats table."""
    n = report.test_images
    parts = [
        "# Which model to ship",
        "",
        *_banner_md(report, weights),
        f"**Recommended: {report.choice.model}.** {report.choice.reason}",
        "",
        f"Rule (params.yaml `report`): the best on accuracy; among the models not "
        f"significantly worse than it (McNemar's exact test on the same {n} test images, "
        f"alpha = {report.alpha:g}), the cheapest in {COST_TITLES[report.cost]}.",
        "",
        "## Models on the same test images",
        "",
        _md_table(_model_table(report)),
        "",
        f"One test image is {100 / n:.1f} accuracy points; the 95 % intervals are Wilson's.",
        "",
        *[f"- {line}" for line in _verdicts(report)],
        "",
        *[f"![{caption}]({path})\n" for caption, path in pictures.items()],
        "### Recall per class",
        "",
        _md_table(_recall_table(report)),
        "",
        *_md_errors(report, error_pictures or {}, _val_images(data)),
        *(["## Formats", "", _formats_note(export), "", _md_table(_formats_table(export)), ""]
          if export else []),
        "## Data",
        "",
        *[f"- {line}" for line in _data_lines(data)],
        "",
        *[f"![{caption}]({path})\n" for caption, path in (data_pictures or {}).items()],
    ]
    return "\n".join(parts)


def _html_table(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>"
                   for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: .2em; } h2 { margin-top: 1.6em; }
.choice { background: #eef6ee; border-left: 4px solid #3a7d44; padding: .8em 1em; }
table { border-collapse: collapse; margin: .6em 0; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .7em; text-align: right; }
th:first-child, td:first-child, td:nth-child(2), td:nth-child(5) { text-align: left; }
th { background: #f4f4f4; } .muted { color: #666; font-size: .9em; }
.warn { background: #fdecea; border-left: 4px solid #b3261e; padding: .5em 1em; }
img { max-width: 100%; border: 1px solid #eee; margin: .4em 0; }
.row { display: flex; flex-wrap: wrap; gap: .8em; } .row figure { margin: 0; }
"""


def _figures(pictures: dict[str, Path]) -> str:
    return "".join(
        f"<figure><img alt='{html.escape(c)}' src='data:image/png;base64,"
        f"{base64.b64encode(p.read_bytes()).decode()}'><figcaption class='muted'>"
        f"{html.escape(c)}</figcaption></figure>"
        for c, p in pictures.items() if p.is_file()
    )


def _html_errors(report: Report, pictures: dict[str, Path], val_images: int | None) -> str:
    """Calibration and the most-confused pairs, as HTML (the reliability diagrams in a row)."""
    reliability = {c: p for c, p in pictures.items() if "reliab" in c.lower()}
    others = {c: p for c, p in pictures.items() if c not in reliability}
    warnings = "".join(f"<p class='warn'>⚠ {html.escape(line)}</p>"
                       for line in calibration_warnings(report, val_images))
    return f"""<h2>Calibration</h2>
{_html_table(_calibration_table(report))}
{warnings}
<p class="muted">{html.escape(CALIBRATION_NOTE)}</p>
<div class="row">{_figures(reliability)}</div>
<h2>Most-confused classes</h2>
{_html_table(_confused_table(report))}
<p class="muted">{html.escape(CONFUSED_NOTE)}</p>
{_figures(others)}"""


def to_html(report: Report, data: dict, pictures: dict[str, Path],
            data_pictures: dict[str, Path] | None = None,
            error_pictures: dict[str, Path] | None = None, weights: dict | None = None,
            export: dict | None = None) -> str:
    """The report as one self-contained page: styles inline, pictures as data: URLs."""
    n = report.test_images
    verdicts = "".join(f"<li>{html.escape(v)}</li>" for v in _verdicts(report))
    data_items = "".join(f"<li>{html.escape(v)}</li>" for v in _data_lines(data))
    formats = (f"<h2>Formats</h2>\n<p class='muted'>{html.escape(_formats_note(export))}</p>\n"
               f"{_html_table(_formats_table(export))}" if export else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Which model to ship</title>
<style>{STYLE}</style></head><body>
<h1>Which model to ship</h1>
{_banner_html(report, weights)}
<p class="choice"><b>Recommended: {html.escape(report.choice.model)}.</b>
{html.escape(report.choice.reason)}</p>
<p class="muted">Rule (params.yaml <code>report</code>): the best on accuracy; among the models
not significantly worse than it (McNemar's exact test on the same {n} test images, alpha =
{report.alpha:g}), the cheapest in {COST_TITLES[report.cost]}.</p>
<h2>Models on the same test images</h2>
{_html_table(_model_table(report))}
<p class="muted">One test image is {100 / n:.1f} accuracy points; the 95 % intervals are
Wilson's. ★ marks the recommended model.</p>
<ul>{verdicts}</ul>
{_figures(pictures)}
<h3>Recall per class</h3>
{_html_table(_recall_table(report))}
{_html_errors(report, error_pictures or {}, _val_images(data))}
{formats}
<h2>Data</h2>
<ul>{data_items}</ul>
{_figures(data_pictures or {})}
</body></html>
"""
