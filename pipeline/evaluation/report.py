"""The one page a person reads to choose a model: data, models side by side, honest error bars.

:func:`page` builds what the page says once, as text (:class:`Page`: the tables' cells,
the banner, the verdicts, the notes, the data lines); one Jinja2 template per format
(templates/report.md.j2, templates/report.html.j2) lays it out, so the two cannot say
different things. The comparison it shows is pipeline.evaluation.comparison's.
"""

from __future__ import annotations

import base64
import functools
import html
from dataclasses import dataclass
from pathlib import Path

import jinja2
from markupsafe import Markup

from pipeline.core import machine, paths
from pipeline.evaluation.comparison import MEASURED, Report, megabytes
from pipeline.evaluation.modelcard import weights_in_words

COST_TITLES = {
    "shipped_params": "parameters of the network that ships (a head with its backbone)",
    "train_seconds": f"training seconds ({MEASURED})",
    "trainable_params": "trainable parameters",
    "inference_seconds": f"seconds per 1,000 test images ({MEASURED})",
}
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


@dataclass(frozen=True)
class Table:
    """A table of the page: its column names and its rows, each cell as text."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Page:
    """Everything the report says, as text; a template only lays it out. Pictures map a
    caption to what the format shows (a path relative to the page, a data: URL)."""

    weights: str  # where the backbone's weights came from
    random_weights: bool  # said loudly: no transfer learning happened
    machines: list[str]  # where the scores came from
    model: str  # the recommended model
    reason: str
    test_images: int
    alpha: str  # the rule's significance level
    cost: str  # the rule's cost, in words
    image_points: str  # one test image in accuracy points
    models: Table
    verdicts: list[str]  # each model against the best
    recall: Table
    calibration: Table
    calibration_warnings: list[str]
    calibration_note: str
    confused: Table
    confused_note: str
    formats: Table | None  # the export's formats, when there was an export
    formats_note: str | None
    data: list[str]
    pictures: dict[str, str]  # after the models' table
    reliability: dict[str, str]  # after the calibration table
    error_pictures: dict[str, str]  # after the confused pairs
    data_pictures: dict[str, str]  # after the data


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


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _model_table(report: Report) -> Table:
    header = ["model", "family", "accuracy % (95 % CI)", "macro-F1", "vs the best",
              "shipped params", "shipped MB", "trainable params", "train s",
              "inference img/s"]
    rows = []
    for m in sorted(report.models, key=lambda m: -report.row(m.name).accuracy):
        r = report.row(m.name)
        star = " ★" if m.name == report.choice.model else ""
        rows.append([
            f"{m.name}{star}", m.family,
            f"{_pct(r.accuracy)} ({_pct(r.low)}–{_pct(r.high)})",
            f"{m.metrics.get('macro_f1', float('nan')):.3f}", r.verdict,
            f"{m.facts['shipped_params']:,}" if "shipped_params" in m.facts else "–",
            megabytes(m.facts["shipped_mb"]) if "shipped_mb" in m.facts else "–",
            f"{int(m.card.get('trainable_params', 0)):,}",
            f"{m.card.get('train_seconds', float('nan')):.1f}",
            f"{m.facts.get('inference_images_per_second', float('nan')):.1f}",
        ])
    return Table(header, rows)


def _recall_table(report: Report) -> Table:
    classes = sorted(report.models[0].predictions["label"].unique())
    first = report.models[0].predictions
    rows = []
    for c in classes:
        cells = [c, str(int((first["label"] == c).sum()))]
        for m in report.models:
            p = m.predictions[m.predictions["label"] == c]
            cells.append(f"{p['correct'].mean():.2f}" if len(p) else "–")
        rows.append(cells)
    return Table(["class", "test images", *[m.name for m in report.models]], rows)


def _calibration_table(report: Report) -> Table:
    """Temperature, ECE and NLL on the test split before -> after (pipeline.evaluation.
    calibration), and whether T lowered both; "–" for a model evaluated before calibration
    existed."""
    keys = ("temperature", "ece", "ece_calibrated", "nll", "nll_calibrated")
    return Table(["model", "temperature", "ECE", "ECE calibrated", "NLL", "NLL calibrated",
                  "T lowered them?"],
                 [[m.name, *(f"{m.metrics[k]:.3f}" if k in m.metrics else "–" for k in keys),
                   _helped(m.metrics)] for m in report.models])


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


def _confused_table(report: Report, top: int = 5) -> Table:
    """Each model's most-confused pairs (true → predicted, count), most frequent first."""
    from pipeline.evaluation.confused_pairs import confused_pairs

    rows = []
    for m in report.models:
        pairs = confused_pairs(m.predictions).head(top)
        cells = ", ".join(f"{r.label} → {r.predicted}: {r.count}" for r in pairs.itertuples())
        rows.append([m.name, str(int((~m.predictions["correct"]).sum())), cells or "none"])
    return Table(["model", "wrong", f"most-confused pairs (true → predicted: count), top {top}"],
                 rows)


def export_record(check: dict, facts: dict) -> dict:
    """What the formats table shows: the export's check of each format (reports/export.json)
    with that format's size and speed (its run facts, reports/runs/export.json) beside it."""
    measured = facts.get("formats", {})
    return check | {"formats": {name: row | measured.get(name, {})
                                for name, row in check["formats"].items()}}


def _formats_table(export: dict) -> Table:
    """The export's record (:func:`export_record`) as rows: each format of
    artifacts/classifier/ against the Keras model."""
    rows = []
    for name, f in export["formats"].items():
        measured = "agreement" in f
        status = f["status"] + (f": {f['reason']}" if f.get("reason") else "")
        if measured and "accuracy_change" in f and name.endswith("int8") and not f.get("reason"):
            status += f" (accuracy {100 * f['accuracy_change']:+.1f} points)"
        rows.append([
            name, f["file"],
            f"{f['size_bytes'] / 1e6:.1f}" if "size_bytes" in f else "–",
            f"{100 * f['agreement']:.1f}" if measured else "–",
            f"{f['max_abs_diff']:.1e}" if measured else "–",
            f"{f['latency_ms_p50']:.1f} / {f['latency_ms_p95']:.1f}"
            if "latency_ms_p50" in f else "–",
            f"{f['batch_images_per_second']:.1f}" if "batch_images_per_second" in f else "–",
            status,
        ])
    return Table(["format", "file", "size MB", "agreement %", "max abs Δp",
                  "latency p50/p95 ms", "batch img/s", "status"], rows)


def _formats_note(export: dict) -> str:
    return (f"{export['model']} in {paths.BEST}/ (temperature {export['temperature']:g}), each "
            f"format against model.keras on the same {export['test_images']} test images; "
            "latency of one image, throughput on batches, on the machine that ran the "
            f"export stage ({paths.run_record('export')}; docs/deploy.md).")


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


def page(report: Report, data: dict, pictures: dict[str, str],
         data_pictures: dict[str, str] | None = None,
         error_pictures: dict[str, str] | None = None, weights: dict | None = None,
         export: dict | None = None) -> Page:
    """What the report says, for either format; the arguments as for :func:`markdown`, with
    each picture given as the format shows it."""
    words, machines = provenance(report, weights)
    errors = error_pictures or {}
    return Page(
        weights=words,
        random_weights=weights is not None and weights.get("source") == "random",
        machines=machines,
        model=report.choice.model,
        reason=report.choice.reason,
        test_images=report.test_images,
        alpha=f"{report.alpha:g}",
        cost=COST_TITLES[report.cost],
        image_points=f"{100 / report.test_images:.1f}",
        models=_model_table(report),
        verdicts=_verdicts(report),
        recall=_recall_table(report),
        calibration=_calibration_table(report),
        calibration_warnings=calibration_warnings(report, (data.get("splits") or {}).get("val")),
        calibration_note=CALIBRATION_NOTE,
        confused=_confused_table(report),
        confused_note=CONFUSED_NOTE,
        formats=_formats_table(export) if export else None,
        formats_note=_formats_note(export) if export else None,
        data=_data_lines(data),
        pictures=dict(pictures),
        reliability={c: p for c, p in errors.items() if "reliab" in c.lower()},
        error_pictures={c: p for c, p in errors.items() if "reliab" not in c.lower()},
        data_pictures=dict(data_pictures or {}),
    )


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|")  # a "|" inside a cell would end it (a reason's |dp|)


def _html_escape(value: object) -> Markup:
    """What the HTML template writes of a value: escaped as html.escape does (quotes as
    &quot; and &#x27;, where MarkupSafe's own escaping writes &#34; and &#39;), so the page
    keeps its bytes; markup the template made itself (a macro's table) is left alone."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


@functools.cache
def _template(kind: str) -> jinja2.Template:
    """The template of one format: "md" (nothing escaped but a "|" in a table cell, by the
    ``cell`` filter) or "html" (every value escaped)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pipeline.evaluation", "templates"),
        autoescape=kind == "html", finalize=_html_escape if kind == "html" else None,
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined)
    env.filters["cell"] = _markdown_cell
    return env.get_template(f"report.{kind}.j2")


def markdown(report: Report, data: dict, pictures: dict[str, str],
             data_pictures: dict[str, str] | None = None,
             error_pictures: dict[str, str] | None = None, weights: dict | None = None,
             export: dict | None = None) -> str:
    """The report as Markdown; ``pictures`` (of the models, shown after their table),
    ``data_pictures`` (after the data) and ``error_pictures`` (reliability diagrams, then
    the confused pairs) map a caption to a path relative to the page; ``weights``
    (data/weights.json) heads the page with where the numbers came from; ``export``
    (:func:`export_record`) gives the formats table."""
    def shown(found: dict | None) -> dict[str, str]:
        return {c: str(p) for c, p in (found or {}).items()}

    return _template("md").render(page=page(
        report, data, shown(pictures), shown(data_pictures), shown(error_pictures), weights,
        export))


def to_html(report: Report, data: dict, pictures: dict[str, Path],
            data_pictures: dict[str, Path] | None = None,
            error_pictures: dict[str, Path] | None = None, weights: dict | None = None,
            export: dict | None = None) -> str:
    """The report as one self-contained page: styles inline, pictures (those that exist)
    as data: URLs."""
    def inline(found: dict[str, Path] | None) -> dict[str, str]:
        return {c: "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()
                for c, p in (found or {}).items() if p.is_file()}

    return _template("html").render(page=page(
        report, data, inline(pictures), inline(data_pictures), inline(error_pictures), weights,
        export))
