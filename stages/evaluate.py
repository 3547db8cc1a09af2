"""Stage evaluate@MODEL: one model on the held-out test split.

The head on the cached test features; every other model on the test images through
the decoder of training. Accuracy, macro-F1 and top-k are metrics; what grows with
the classes (precision and recall per class, the confusion matrix) and what a person
looks at (the mistakes, with a Grad-CAM map on each for a convolutional model, and the
most-confused pairs) are plots. A temperature fitted on the validation split calibrates
the probabilities: ECE and NLL on the test split before and after it are metrics, and
the reliability diagram a plot.

Reads:  params evaluate.*, distribute; models/MODEL.keras, models/MODEL.json (its card); the head:
        data/features/{val,test}.npz, others: data/manifest.csv; data/source.json (the images)
Writes: metrics/evaluate/MODEL.json (with temperature, ece, ece_calibrated, nll,
        nll_calibrated, and the machine: its kernels can move a score),
        reports/predictions/MODEL.csv (each test image),
        plots/MODEL/{confusion,per_class,reliability}.csv,
        plots/MODEL/{mistakes,confused_pairs,reliability}.png
"""

import time
from pathlib import Path

import numpy as np

from pipeline.core import machine, paths, stage
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.params import Params, ParamsError
from pipeline.data.sources import data_root


def validation_probabilities(net, card: dict, root, batch_size: int):
    """(labels, probabilities) of the validation split: the forward pass temperature
    scaling is fitted on (the head on the cached features, others on the images)."""
    from pipeline.data.input import image_dataset, split_arrays
    from pipeline.data.manifest import read
    from pipeline.models.features import Features

    if card["input"] == "features":
        val = Features.load(paths.FEATURES / "val.npz")
        return val.labels, net.predict(val.features, batch_size=batch_size, verbose=0)
    absolute, labels = split_arrays(read(paths.MANIFEST), root, "val", card["classes"])
    ds = image_dataset(absolute, labels, card["image_size"], batch_size)
    return labels, net.predict(ds, verbose=0)


def mistake_overlays(net, card: dict, shown, root) -> tuple[dict, str]:
    """Grad-CAM overlays of the mistakes a sheet shows (the forward and backward passes
    of those few images only), for the models that see images."""
    from pipeline.evaluation.saliency import saliency_overlays

    if card["input"] == "features":
        # A linear model on cached features: its map would be the backbone's, which would
        # tie evaluate@head to the backbone and its weights (and cost a backbone build in
        # the head's fast loop). The fine-tune's sheet shows where that ResNet looks.
        return {}, "no saliency map: the head sees cached features, not pixels"
    files = {p: str(Path(root) / p) for p in shown["path"]}
    return saliency_overlays(net, files, card.get("image_size"))


def main(params: Params, model: str) -> None:
    if model not in params.models():
        raise ParamsError(f"no model {model!r} in params.yaml; the models are: "
                          f"{', '.join(params.models())}")
    from pipeline.training.distribute import place

    placement = place(params.distribute, inference=True)
    if not placement.chief:
        print(f"evaluate {model}: not the chief worker; the chief evaluates")
        return
    from pipeline.data.input import image_dataset, split_arrays
    from pipeline.data.manifest import read
    from pipeline.evaluation import calibration, predictions
    from pipeline.evaluation.confused import draw_confused_pairs
    from pipeline.evaluation.confusion import write_confusion
    from pipeline.evaluation.mistakes import draw_mistakes, shown_mistakes
    from pipeline.evaluation.scores import per_class, score
    from pipeline.models.features import Features
    from pipeline.models.saving import load_model

    ev = params.evaluate
    card = read_json(paths.MODELS / f"{model}.json")
    names = card["classes"]
    with placement.scope():  # predict splits each batch over the replicas
        net = load_model(paths.MODELS / f"{model}.keras")
    root = data_root(params.data)  # the images: the test inputs, and the mistakes' thumbnails
    if card["input"] == "features":
        test = Features.load(paths.FEATURES / "test.npz")
        files, labels = test.paths, test.labels
        proba = net.predict(test.features, batch_size=placement.global_batch(ev.batch_size),
                            verbose=0)
        # The head's cost is nothing beside the backbone pass that makes its input.
        speed = card["backbone"]["images_per_second"]
    else:
        manifest = read(paths.MANIFEST)
        files = manifest.loc[manifest["split"] == "test", "path"].to_numpy(dtype=str)
        absolute, labels = split_arrays(manifest, root, "test", names)
        ds = image_dataset(absolute, labels, card["image_size"],
                           placement.global_batch(ev.batch_size))
        start = time.perf_counter()
        proba = net.predict(ds, verbose=0)
        speed = round(len(labels) / (time.perf_counter() - start), 1)

    y_val, proba_val = validation_probabilities(net, card, root,
                                                placement.global_batch(ev.batch_size))
    calibrated, proba_calibrated = calibration.summary(y_val, proba_val, labels, proba)
    scores = (score(labels, proba, names, ev.top_k) | {"inference_images_per_second": speed,
                                                       "machine": machine.record()}
              | calibrated)
    write_json(paths.METRICS / "evaluate" / f"{model}.json", scores)
    table = predictions.frame(files, labels, proba, names, proba_calibrated)
    predictions.write(table, paths.PREDICTIONS / f"{model}.csv")
    plots = paths.PLOTS / model
    bins = calibration.reliability_table(labels, proba, proba_calibrated)
    with atomic_path(plots / "reliability.csv", suffix=".csv") as tmp:
        bins.to_csv(tmp, index=False)
    calibration.reliability_chart(bins, calibrated, model, plots / "reliability.png")
    draw_confused_pairs(table, root, model, plots / "confused_pairs.png")
    write_confusion(plots / "confusion.csv", labels, np.argmax(proba, 1), names)
    per = per_class(labels, np.argmax(proba, 1), names)
    # Long form, one bar per class and measure: DVC's bar charts take one value column.
    bars = per.melt(id_vars="class", value_vars=["precision", "recall"], var_name="measure")
    bars["bar"] = bars["class"] + " · " + bars["measure"]
    bars = bars.sort_values(["class", "measure"], kind="stable")
    with atomic_path(plots / "per_class.csv", suffix=".csv") as tmp:
        bars[["bar", "value", "class", "measure"]].to_csv(tmp, index=False)
    overlays, note = mistake_overlays(net, card,
                                      shown_mistakes(table, ev.mistakes_shown), root)
    wrong = draw_mistakes(table, root, model, plots / "mistakes.png",
                          ev.mistakes_shown, overlays, note)
    print(f"evaluate {model}: accuracy {scores['accuracy']:.4f}, macro-F1 "
          f"{scores['macro_f1']:.4f} on {len(labels)} test images ({wrong} wrong), "
          f"{speed} img/s; T = {calibrated['temperature']}: ECE {calibrated['ece']} -> "
          f"{calibrated['ece_calibrated']}, NLL {calibrated['nll']} -> "
          f"{calibrated['nll_calibrated']}")


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("model", metavar="MODEL",
                      help="head, or an entry of params.yaml's finetune or scratch section")
    stage.run(main, args)
