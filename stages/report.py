"""Stage report: which model to ship, with honest error bars; the chosen model as an artifact.

Every model side by side on the same test images: accuracy with a 95 % Wilson
interval, macro-F1, recall per class, trainable parameters, training seconds,
inference images/s; each model against the best by McNemar's exact test on those
images; a chart of accuracy against training time; and a recommendation by the rule
of params.yaml's ``report`` section. The recommended model is exported to models/best/.

Reads:  params report.*, backbone, seed; for every model (the head, each finetune and
        scratch entry): models/MODEL.{keras,json}, metrics/evaluate/MODEL.json,
        reports/predictions/MODEL.csv, plots/MODEL/{reliability,confused_pairs}.png;
        reports/data/prepare.json, metrics/validation.json, plots/data/*.png;
        data/weights.json (the banner; the head's export behind its backbone)
Writes: reports/report.md, reports/report.html (self-contained), plots/report/
        accuracy_vs_compute.png, metrics/report.json, models/best/{model.keras,card.json,README.md}
"""

from pathlib import Path

from pipeline.core import paths, stage
from pipeline.core.errors import PipelineError
from pipeline.core.io import read_json, write_json, write_text
from pipeline.core.params import Params


def main(params: Params) -> None:
    from pipeline.evaluation import predictions
    from pipeline.evaluation.export import export_best
    from pipeline.evaluation.modelcard import write_model_card
    from pipeline.evaluation.report import ModelResult, compare, compute_chart, markdown, to_html

    models = []
    for name in params.models():
        needed = [paths.METRICS / "evaluate" / f"{name}.json",
                  paths.PREDICTIONS / f"{name}.csv", paths.MODELS / f"{name}.json"]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise PipelineError(
                f"model {name!r} has no evaluation ({', '.join(missing)} missing): add "
                f"`{name}: {{test: ...}}` to stages.evaluate.foreach in dvc.yaml")
        card = read_json(paths.MODELS / f"{name}.json")
        models.append(ModelResult(name, card.get("family", name), read_json(needed[0]), card,
                                  predictions.read(needed[1])))
    report = compare(models, params.report.cost, params.report.alpha)

    data = read_json(paths.DATA_REPORTS / "prepare.json")
    data["validation_warnings"] = read_json(paths.METRICS / "validation.json").get("warnings", 0)
    chart = paths.PLOTS / "report" / "accuracy_vs_compute.png"
    compute_chart(report, chart)
    pictures = {
        "Accuracy against training compute": chart,
        f"What {report.choice.model} gets wrong":
            paths.PLOTS / report.choice.model / "mistakes.png",
    }
    error_pictures = {
        **{f"Reliability of {m.name}": paths.PLOTS / m.name / "reliability.png"
           for m in models},
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
                        relative(error_pictures), weights=weights))
    write_text(paths.REPORTS / "report.html",
               to_html(report, data, pictures, data_pictures, error_pictures, weights=weights))
    write_json(paths.METRICS / "report.json", report.to_metrics())
    card = export_best(report.choice.model, params.backbone, params.seed)
    write_model_card(paths.BEST, card, params)  # moves to the export stage with export_best
    print(markdown(report, data, {}, weights=weights).split("## Data")[0].rstrip())
    print(f"report: {paths.REPORTS / 'report.html'}; {report.choice.model} exported to "
          f"{paths.BEST}/ ({card.get('exported', 'copied')})")


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
