"""Stage evaluate: every model on the test split -> metrics/evaluate.json, evaluate.md."""

import time

import numpy as np

from pipeline import paths, stage
from pipeline.config import Config
from pipeline.evaluation import score, write_confusion, write_table
from pipeline.io import read_json, write_json
from pipeline.manifest import classes, read
from pipeline.sources import data_root


def main(cfg: Config) -> None:
    import keras

    import pipeline.backbone  # noqa: F401 - register the custom layers for safe_mode loading
    import pipeline.bit  # noqa: F401
    from pipeline.data import image_dataset, split_arrays
    from pipeline.features import Features
    from pipeline.training import trainable_params

    k = cfg.evaluate.top_k
    test = Features.load(paths.FEATURES / "test.npz")
    names = test.classes.tolist()
    results = {}

    head = keras.models.load_model(paths.HEAD_MODEL)  # safe_mode stays on
    proba = head.predict(test.features, batch_size=cfg.evaluate.batch_size, verbose=0)
    results["head"] = score(test.labels, proba, names, k) | {
        "trainable_params": trainable_params(head),
        "train_seconds": read_json(paths.METRICS / "head.json")["train_seconds"],
        # The head's cost is negligible beside the backbone pass that makes its input.
        "inference_images_per_second": read_json(paths.METRICS / "features.json")[
            "images_per_second"
        ],
    }
    write_confusion(paths.CONFUSION / "head.csv", test.labels, proba.argmax(1), names)

    manifest = read(paths.MANIFEST)
    assert classes(manifest) == names, "features and manifest disagree on the classes"
    files, labels = split_arrays(manifest, data_root(cfg), "test", names)
    for name in cfg.finetune:
        model = keras.models.load_model(paths.FINETUNE / f"{name}.keras")
        size = model.input_shape[1]
        ds = image_dataset(files, labels, size, cfg.evaluate.batch_size)
        start = time.perf_counter()
        proba = model.predict(ds, verbose=0)
        speed = len(files) / (time.perf_counter() - start)
        results[name] = score(labels, proba, names, k) | {
            "trainable_params": read_json(paths.METRICS / "finetune" / f"{name}.json")[
                "trainable_params"
            ],
            "train_seconds": read_json(paths.METRICS / "finetune" / f"{name}.json")[
                "train_seconds"
            ],
            "inference_images_per_second": round(speed, 1),
        }
        write_confusion(paths.CONFUSION / f"{name}.csv", labels, np.argmax(proba, 1), names)

    write_json(paths.METRICS / "evaluate.json", results)
    table = write_table(paths.METRICS / "evaluate.md", results, len(test.labels))
    print(table)


if __name__ == "__main__":
    stage.run(main)
