"""Stage evaluate: every model on the test split, side by side.

Accuracy, macro-F1, top-k (k < classes), per-class precision/recall, the confusion
matrix, trainable parameters, training time and inference images/s.

Reads:  params evaluate.*, data.source (the images); data/features/test.npz,
        models/head.keras, models/finetune/*.keras and their metrics, data/manifest.csv
Writes: metrics/evaluate.json, metrics/evaluate.md (the table), metrics/confusion/<model>.csv
"""

import time

import numpy as np

from pipeline.core import paths, stage
from pipeline.core.io import read_json, write_json
from pipeline.core.params import Params
from pipeline.data.manifest import classes, read
from pipeline.data.sources import data_root


def main(params: Params) -> None:
    from pipeline.data.input import image_dataset, split_arrays
    from pipeline.evaluation.compare import write_table
    from pipeline.evaluation.confusion import write_confusion
    from pipeline.evaluation.scores import score
    from pipeline.models.features import Features
    from pipeline.models.saving import load_model

    k = params.evaluate.top_k
    test = Features.load(paths.FEATURES / "test.npz")
    names = test.classes.tolist()
    results = {}

    head = load_model(paths.HEAD_MODEL)
    proba = head.predict(test.features, batch_size=params.evaluate.batch_size, verbose=0)
    trained = read_json(paths.METRICS / "head.json")
    results["head"] = score(test.labels, proba, names, k) | {
        "trainable_params": trained["trainable_params"],
        "train_seconds": trained["train_seconds"],
        # The head's cost is negligible beside the backbone pass that makes its input.
        "inference_images_per_second": read_json(paths.METRICS / "features.json")[
            "images_per_second"
        ],
    }
    write_confusion(paths.CONFUSION / "head.csv", test.labels, proba.argmax(1), names)

    manifest = read(paths.MANIFEST)
    assert classes(manifest) == names, "features and manifest disagree on the classes"
    files, labels = split_arrays(manifest, data_root(params.data), "test", names)
    for name in params.finetune:
        model = load_model(paths.FINETUNE / f"{name}.keras")
        size = model.input_shape[1]
        ds = image_dataset(files, labels, size, params.evaluate.batch_size)
        start = time.perf_counter()
        proba = model.predict(ds, verbose=0)
        speed = len(files) / (time.perf_counter() - start)
        trained = read_json(paths.METRICS / "finetune" / f"{name}.json")
        results[name] = score(labels, proba, names, k) | {
            "trainable_params": trained["trainable_params"],
            "train_seconds": trained["train_seconds"],
            "inference_images_per_second": round(speed, 1),
        }
        write_confusion(paths.CONFUSION / f"{name}.csv", labels, np.argmax(proba, 1), names)

    write_json(paths.METRICS / "evaluate.json", results)
    table = write_table(paths.METRICS / "evaluate.md", results, len(test.labels))
    print(table)


if __name__ == "__main__":
    stage.run(main, stage.parser(__doc__))
