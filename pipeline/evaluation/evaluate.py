"""One model on the held-out test split: the body of the evaluate stages.

What it measures, reads and writes is the stage's ``--help``: stages/evaluate.py.
"""

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.core import paths, run_facts
from pipeline.core.errors import PipelineError
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.params import Params, ParamsError
from pipeline.data.sources import data_root
from pipeline.models.card import orientation_of
from pipeline.runtimes.numpy_head import UnsupportedHead

log = logging.getLogger(__name__)


@dataclass
class Outputs:
    """One model's forward passes: the test split (scored) and the validation split (the
    temperature is fitted on it), how fast, on what, and the Keras network for Grad-CAM."""

    files: np.ndarray
    labels: np.ndarray
    proba: np.ndarray
    val_labels: np.ndarray
    val_proba: np.ndarray
    speed: float
    runtime: str
    size: tuple[int, int]  # (parameters, weight bytes) of the network evaluated
    net: object = None  # keras.Model of an image model; None for the NumPy head


def mistake_overlays(net, card: dict, shown, root) -> tuple[dict, str]:
    """Grad-CAM overlays of the mistakes a sheet shows (the forward and backward passes
    of those few images only), for the models that see images."""
    if card["input"] == "features" or net is None:
        # A linear model on cached features: its map would be the backbone's, which would
        # tie evaluate_head to the backbone and its weights (and cost a backbone build in
        # the head's fast loop). The fine-tune's sheet shows where that ResNet looks.
        return {}, "no saliency map: the head sees cached features, not pixels"
    from pipeline.evaluation.saliency import saliency_overlays  # Keras: TensorFlow starts

    files = {p: str(Path(root) / p) for p in shown["path"]}
    return saliency_overlays(net, files, card.get("image_size"),
                             exif_orientation=orientation_of(card))


def evaluate(params: Params, model: str) -> None:
    """Evaluate ``model`` (the head, a finetune or a scratch entry) and write its outputs."""
    if model not in params.models():
        raise ParamsError(f"no model {model!r} in params.yaml; the models are: "
                          f"{', '.join(params.models())}")
    card = read_json(paths.model_card(model))
    # The images (the test and validation splits, the mistakes' thumbnails): where
    # prepare found them (data/source.json, a dependency of the stage), looked up once.
    # Resolved again (offline) only when that folder is gone: a fresh clone has prepare's
    # record from DVC but not an archive's extraction, which lives in data.cache.
    root = data_root(params.data)
    # The head on one machine runs in NumPy: TensorFlow's start-up alone is most of the
    # time the head's whole evaluation would take. A cluster keeps the chief's rule.
    if card["input"] == "features" and not os.environ.get("TF_CONFIG"):
        try:
            out = _head_outputs(model, card)
        except UnsupportedHead as err:  # a layer NumPy does not reproduce: Keras runs it
            log.warning(f"evaluate {model}: {err}; running it in TensorFlow")
            out = _network_outputs(params, model, card, root)
    else:
        out = _network_outputs(params, model, card, root)
    if out is None:
        log.info(f"evaluate {model}: not the chief worker; the chief evaluates")
        return
    from pipeline.evaluation import calibration, predictions
    from pipeline.evaluation.confused_pairs import draw_confused_pairs
    from pipeline.evaluation.confusion import write_confusion
    from pipeline.evaluation.mistakes import draw_mistakes, shown_mistakes
    from pipeline.evaluation.scores import per_class, score

    ev = params.evaluate
    names = card["classes"]
    labels, proba = out.labels, out.proba
    calibrated, proba_calibrated = calibration.summary(
        out.val_labels, out.val_proba, labels, proba, fit=ev.calibration == "temperature")
    shipped, shipped_bytes = shipped_size(card, out.size)
    scores = score(labels, proba, names, ev.top_k) | calibrated
    write_json(paths.evaluation(model), scores)
    # What ran and how fast, and the size of what ships: the recommendation's costs.
    run_facts.write(f"evaluate/{model}", {
        "inference_images_per_second": out.speed, "runtime": out.runtime,
        "shipped_params": shipped, "shipped_mb": round(shipped_bytes / 1e6, 2)})
    table = predictions.frame(out.files, labels, proba, names,
                              proba_calibrated if "temperature" in calibrated else None)
    predictions.write(table, paths.predictions(model))
    plots = paths.PLOTS / model
    bins = calibration.reliability_table(labels, proba, proba_calibrated)
    with atomic_path(plots / "reliability.csv", suffix=".csv") as tmp:
        bins.to_csv(tmp, index=False)
    calibration.reliability_chart(bins, calibrated, model, plots / "reliability.png")
    exif_orientation = orientation_of(card)  # the thumbnails as the model's decode turned them
    draw_confused_pairs(table, root, model, plots / "confused_pairs.png",
                        exif_orientation=exif_orientation)
    write_confusion(plots / "confusion.csv", labels, np.argmax(proba, 1), names)
    per = per_class(labels, np.argmax(proba, 1), names)
    # Long form, one bar per class and measure: DVC's bar charts take one value column.
    bars = per.melt(id_vars="class", value_vars=["precision", "recall"], var_name="measure")
    bars["bar"] = bars["class"] + " · " + bars["measure"]
    bars = bars.sort_values(["class", "measure"], kind="stable")
    with atomic_path(plots / "per_class.csv", suffix=".csv") as tmp:
        bars[["bar", "value", "class", "measure"]].to_csv(tmp, index=False)
    overlays, note = mistake_overlays(out.net, card,
                                      shown_mistakes(table, ev.mistakes_shown), root)
    wrong = draw_mistakes(table, root, model, plots / "mistakes.png",
                          ev.mistakes_shown, overlays, note, exif_orientation=exif_orientation)
    scaled = (f"T = {calibrated['temperature']}: ECE {calibrated['ece']} -> "
              f"{calibrated['ece_calibrated']}, NLL {calibrated['nll']} -> "
              f"{calibrated['nll_calibrated']}" if "temperature" in calibrated else
              f"no temperature (evaluate.calibration: none): ECE {calibrated['ece']}, NLL "
              f"{calibrated['nll']}")
    log.info(f"evaluate {model}: accuracy {scores['accuracy']:.4f}, macro-F1 "
             f"{scores['macro_f1']:.4f} on {len(labels)} test images ({wrong} wrong), "
             f"{out.speed} img/s ({out.runtime}); {scaled}")
    if (said := calibration.unhelpful(calibrated, len(out.val_labels))) is not None:
        log.warning(f"evaluate {model}: {said}")


def shipped_size(card: dict, size: tuple[int, int]) -> tuple[int, int]:
    """(parameters, weight bytes) of what the export ships for a model of ``size``: the
    network itself, and for a head on features the backbone the export chains before it
    (as the features stage built it: data/features/info.json)."""
    if card["input"] != "features":
        return size
    info = paths.FEATURES / "info.json"
    made = read_json(info)
    if "params" not in made or "weight_bytes" not in made:
        raise PipelineError(f"{info} does not say how big the backbone is (features made "
                            "by an older version): run `dvc repro features`")
    return size[0] + int(made["params"]), size[1] + int(made["weight_bytes"])


def _feature_outputs(probabilities: Callable[[np.ndarray], np.ndarray], card: dict,
                     runtime: str, size: tuple[int, int]) -> Outputs:
    """A model on the cached test and validation features (data/features/{test,val}.npz),
    ``probabilities`` mapping a features array to class probabilities."""
    from pipeline.models.features import Features

    test = Features.load(paths.FEATURES / "test.npz")
    val = Features.load(paths.FEATURES / "val.npz")
    # The head's cost is nothing beside the backbone pass that makes its input.
    return Outputs(test.paths, test.labels, probabilities(test.features), val.labels,
                   probabilities(val.features), card["backbone"]["images_per_second"], runtime,
                   size)


def _head_outputs(model: str, card: dict) -> Outputs:
    """The head on the features, in NumPy."""
    from pipeline.models.size import of_file
    from pipeline.runtimes.numpy_head import head_probabilities

    head = paths.model_file(model)
    return _feature_outputs(lambda x: head_probabilities(head, x), card, "numpy float32",
                            of_file(head))


def _network_outputs(params: Params, model: str, card: dict, root: Path) -> Outputs | None:
    """The same for a network, on params.yaml's inference runtime (TensorFlow's strategy
    when there are several replicas); None off the chief. ``root``: the images' folder."""
    from pipeline.runs.placement import place

    placement = place(params.distribute, inference=True)
    if not placement.chief:
        return None
    from pipeline.data.input import split_arrays
    from pipeline.data.manifest import read
    from pipeline.models.size import of_network
    from pipeline.models.trained import TrainedModel

    batch = placement.global_batch(params.evaluate.batch_size)
    with placement.scope():  # predict splits each batch over the replicas
        trained = TrainedModel.load(paths.model_file(model), card)
    net = trained.network
    if card["input"] == "features":
        return _feature_outputs(lambda x: net.predict(x, batch_size=batch, verbose=0), card,
                                "tensorflow", of_network(net))
    names = card["classes"]
    manifest = read(paths.MANIFEST)
    files = manifest.loc[manifest["split"] == "test", "path"].to_numpy(dtype=str)
    forward = None if placement.replicas > 1 else trained.forward(
        params.inference.runtime, params.inference.precision)

    def run(split: str) -> tuple[np.ndarray, np.ndarray, float]:
        absolute, labels = split_arrays(manifest, root, split, names)
        ds = trained.dataset(absolute, labels, batch)  # decoded as it was trained
        start = time.perf_counter()
        if forward is None:
            proba = net.predict(ds, verbose=0)
        else:
            proba = np.concatenate([forward(images.numpy()) for images, _ in ds])
        return labels, proba, round(len(labels) / (time.perf_counter() - start), 1)

    labels, proba, speed = run("test")
    val_labels, val_proba, _ = run("val")
    runtime = "tensorflow (distributed)" if forward is None else forward.label()
    return Outputs(files, labels, proba, val_labels, val_proba, speed, runtime,
                   of_network(net), net)
