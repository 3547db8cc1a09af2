"""Stage evaluate@MODEL: one model on the held-out test split.

The head on the cached test features; every other model on the test images through
the decoder of training. Accuracy, macro-F1 and top-k are metrics; what grows with
the classes (precision and recall per class, the confusion matrix) and what a person
looks at (the mistakes) are plots.

Reads:  params evaluate.*, distribute, inference; models/MODEL.keras, models/MODEL.json
        (its card); the head (in NumPy, no TensorFlow): data/features/test.npz, others:
        data/manifest.csv; data/source.json (the images)
Writes: metrics/evaluate/MODEL.json, reports/predictions/MODEL.csv (each test image),
        plots/MODEL/{confusion,per_class}.csv, plots/MODEL/mistakes.png
"""

import os
import time

import numpy as np

from pipeline.core import paths, stage
from pipeline.core.io import atomic_path, read_json, write_json
from pipeline.core.params import Params, ParamsError
from pipeline.data.sources import data_root
from pipeline.runtimes.numpy_head import UnsupportedHead


def main(params: Params, model: str) -> None:
    if model not in params.models():
        raise ParamsError(f"no model {model!r} in params.yaml; the models are: "
                          f"{', '.join(params.models())}")
    card = read_json(paths.MODELS / f"{model}.json")
    # The head on one machine runs in NumPy: TensorFlow's start-up alone is most of the
    # time the head's whole evaluation would take. A cluster keeps the chief's rule.
    if card["input"] == "features" and not os.environ.get("TF_CONFIG"):
        try:
            outputs = _head_outputs(model, card)
        except UnsupportedHead as err:  # a layer NumPy does not reproduce: Keras runs it
            print(f"evaluate {model}: {err}; running it in TensorFlow")
            outputs = _network_outputs(params, model, card)
    else:
        outputs = _network_outputs(params, model, card)
    if outputs is None:
        print(f"evaluate {model}: not the chief worker; the chief evaluates")
        return
    files, labels, proba, speed, runtime = outputs
    from pipeline.evaluation import predictions
    from pipeline.evaluation.confusion import write_confusion
    from pipeline.evaluation.mistakes import draw_mistakes
    from pipeline.evaluation.scores import per_class, score

    ev = params.evaluate
    names = card["classes"]
    root = data_root(params.data)  # the images: the mistakes' thumbnails
    scores = score(labels, proba, names, ev.top_k) | {"inference_images_per_second": speed,
                                                       "runtime": runtime}
    write_json(paths.METRICS / "evaluate" / f"{model}.json", scores)
    table = predictions.frame(files, labels, proba, names)
    predictions.write(table, paths.PREDICTIONS / f"{model}.csv")
    plots = paths.PLOTS / model
    write_confusion(plots / "confusion.csv", labels, np.argmax(proba, 1), names)
    per = per_class(labels, np.argmax(proba, 1), names)
    # Long form, one bar per class and measure: DVC's bar charts take one value column.
    bars = per.melt(id_vars="class", value_vars=["precision", "recall"], var_name="measure")
    bars["bar"] = bars["class"] + " · " + bars["measure"]
    bars = bars.sort_values(["class", "measure"], kind="stable")
    with atomic_path(plots / "per_class.csv", suffix=".csv") as tmp:
        bars[["bar", "value", "class", "measure"]].to_csv(tmp, index=False)
    wrong = draw_mistakes(table, root, model, plots / "mistakes.png",
                          ev.mistakes_shown)
    print(f"evaluate {model}: accuracy {scores['accuracy']:.4f}, macro-F1 "
          f"{scores['macro_f1']:.4f} on {len(labels)} test images ({wrong} wrong), "
          f"{speed} img/s ({runtime})")


def _head_outputs(model: str, card: dict) -> tuple:
    """(files, labels, probabilities, images/s, runtime) of the head on the test features."""
    from pipeline.models.features import Features
    from pipeline.runtimes.numpy_head import head_probabilities

    test = Features.load(paths.FEATURES / "test.npz")
    proba = head_probabilities(paths.MODELS / f"{model}.keras", test.features)
    # The head's cost is nothing beside the backbone pass that makes its input.
    speed = card["backbone"]["images_per_second"]
    return test.paths, test.labels, proba, speed, "numpy float32"


def _network_outputs(params: Params, model: str, card: dict) -> tuple | None:
    """The same for a network on the test images, on params.yaml's inference runtime
    (TensorFlow's strategy when there are several replicas); None off the chief."""
    from pipeline.training.distribute import place

    placement = place(params.distribute, inference=True)
    if not placement.chief:
        return None
    from pipeline.data.input import image_dataset, split_arrays
    from pipeline.data.manifest import read
    from pipeline.models.features import Features
    from pipeline.models.saving import load_model
    from pipeline.runtimes.select import compile_forward

    batch = placement.global_batch(params.evaluate.batch_size)
    with placement.scope():  # predict splits each batch over the replicas
        net = load_model(paths.MODELS / f"{model}.keras")
    if card["input"] == "features":
        test = Features.load(paths.FEATURES / "test.npz")
        proba = net.predict(test.features, batch_size=batch, verbose=0)
        return (test.paths, test.labels, proba, card["backbone"]["images_per_second"],
                "tensorflow")
    names = card["classes"]
    manifest = read(paths.MANIFEST)
    files = manifest.loc[manifest["split"] == "test", "path"].to_numpy(dtype=str)
    absolute, labels = split_arrays(manifest, data_root(params.data), "test", names)
    ds = image_dataset(absolute, labels, card["image_size"], batch)
    forward = None if placement.replicas > 1 else compile_forward(
        net, params.inference.runtime, params.inference.precision)
    start = time.perf_counter()
    if forward is None:
        proba, runtime = net.predict(ds, verbose=0), "tensorflow (distributed)"
    else:
        proba = np.concatenate([forward(images.numpy()) for images, _ in ds])
        runtime = forward.label()
    speed = round(len(labels) / (time.perf_counter() - start), 1)
    return files, labels, proba, speed, runtime


if __name__ == "__main__":
    args = stage.parser(__doc__)
    args.add_argument("model", metavar="MODEL",
                      help="head, or an entry of params.yaml's finetune or scratch section")
    stage.run(main, args)
