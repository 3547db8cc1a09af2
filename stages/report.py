"""Stage report: which model to ship, with honest error bars, and the formats it ships in.

Every model side by side on the same test images: accuracy with a 95 % Wilson
interval, macro-F1, recall per class, the parameters and MB of the network that ships
(a head with its backbone), trainable parameters, training seconds, inference images/s;
whether each temperature lowered the test ECE and NLL (a warning naming the validation
split's size when it did not); each model against the best by McNemar's exact test on
those images; a chart of accuracy against training time; and a recommendation by the rule
of params.yaml's ``report`` section; and the export stage's table of the recommended
model's formats (artifacts/classifier/), after checking that it exported that model; and
every model's training curves in two tables (a model column) for the plots page.

Reads:  params report.*; for every model (the head, each finetune and scratch entry):
        models/MODEL.json, metrics/evaluate/MODEL.json, reports/runs/evaluate/MODEL.json
        (shipped size, speed, machine), reports/predictions/MODEL.csv,
        plots/MODEL/{reliability,confused_pairs,mistakes}.png, dvclive/MODEL/plots/metrics/;
        reports/export.json and reports/runs/export.json (the formats table),
        artifacts/classifier/card.json; reports/data/prepare.json,
        metrics/validation.json, plots/data/*.png; data/weights.json (the banner: which
        weights the backbone had)
Writes: reports/report.md, reports/report.html (self-contained), reports/figures/
        (accuracy_vs_compute.png, curves.csv, learning_rate.csv), metrics/report.json
"""

import logging
from pathlib import Path

from pipeline.core import paths, run_facts, stage
from pipeline.core.errors import PipelineError
from pipeline.core.io import read_json, write_json, write_text
from pipeline.core.params import Params

log = logging.getLogger(__name__)


def main(params: Params) -> None:
    from pipeline.evaluation.charts import accuracy_vs_compute
    from pipeline.evaluation.choice import recommendation
    from pipeline.evaluation.curves import write_curve_tables
    from pipeline.evaluation.report import export_record, markdown, to_html

    report = recommendation(params)
    exported = read_json(paths.BEST / "card.json").get("model")
    if exported != report.choice.model:
        raise PipelineError(f"{paths.BEST / 'card.json'} is {exported!r}, the report recommends "
                            f"{report.choice.model!r}: run `dvc repro export`")
    export = export_record(read_json(paths.EXPORT_CHECK), run_facts.read("export"))

    data = read_json(paths.DATA_REPORTS / "prepare.json")
    data["validation_warnings"] = read_json(paths.METRICS / "validation.json").get("warnings", 0)
    chart = paths.FIGURES / "accuracy_vs_compute.png"
    accuracy_vs_compute(report, chart)
    write_curve_tables(params.models(), paths.FIGURES)
    pictures = {
        "Accuracy against training compute": chart,
        f"What {report.choice.model} gets wrong":
            paths.PLOTS / report.choice.model / "mistakes.png",
    }
    error_pictures = {
        **{f"Reliability of {m.name}": paths.PLOTS / m.name / "reliability.png"
           for m in report.models},
        f"{report.choice.model}: the most-confused pairs, with test images":
            paths.PLOTS / report.choice.model / "confused_pairs.png",
    }
    data_pictures = {
        "The data set: sample images per class": paths.PLOTS / "data" / "samples.png",
        "What prepare left out or flagged, and why": paths.PLOTS / "data" / "left_out.png",
    }

    def relative(found: dict[str, Path]) -> dict[str, Path]:
        return {c: Path("..") / p for c, p in found.items() if p.is_file()}

    weights = read_json(paths.WEIGHTS_RECORD)
    write_text(paths.REPORTS / "report.md",
               markdown(report, data, relative(pictures), relative(data_pictures),
                        relative(error_pictures), weights=weights, export=export))
    write_text(paths.REPORTS / "report.html",
               to_html(report, data, pictures, data_pictures, error_pictures, weights=weights,
                       export=export))
    write_json(paths.METRICS / "report.json", report.to_metrics())
    # Two lines: the page is the place to read it (a terminal is not).
    log.info(f"report: recommended {report.choice.model}. {report.choice.reason}")
    log.info(f"report: {paths.REPORTS / 'report.html'} ({paths.REPORTS / 'report.md'} without "
             f"pictures); {report.choice.model} is in {paths.BEST}/")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
