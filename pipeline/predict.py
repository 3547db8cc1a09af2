"""Predict with a trained model: top-k labels for images and folders of images.

    python -m pipeline.predict photo.jpg more/ [--model models/head.keras] [--top-k 3]
        [--batch-size 32] [--output out.csv|out.json] [--classes classes.json]
    python -m pipeline.predict photo.jpg --imagenet      # the pretrained 1000-class ResNet50

Images go through ``pipeline.data.load_image``, the decoder and resize of
training and evaluation, so a prediction sees what the model was trained on;
the models carry their own normalisation. A head (``models/head.keras``, whose
input is a feature vector) is chained behind the backbone built exactly as the
features stage built it: params.yaml's ``backbone`` section, the weights record
of ``metrics/weights.json``, and the same seed when those weights are random.

Exit status: 0 when every image was predicted, 1 when some inputs could not be
read (each is reported by name and skipped), 2 when nothing could be done.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline import paths
from pipeline.manifest import IMAGE_EXTENSIONS

DEFAULT_MODELS = (paths.FINETUNE / "resnet50.keras", paths.HEAD_MODEL)
CLASSES_FROM = paths.FEATURES / "test.npz"
IMAGENET_SIZE = 224  # the size Keras' ImageNet ResNet50 was trained at
IMAGENET_WEIGHTS = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"  # with the top
IMAGENET_CLASS_INDEX = "imagenet_class_index.json"
# keras.src.applications.imagenet_utils.decode_predictions's own hash for that file.
IMAGENET_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"


class PredictError(RuntimeError):
    """Nothing can be predicted; the message says why and what to do."""


@dataclass
class Predictor:
    """Raw RGB [0, 255] batches -> class probabilities, and how to name the classes."""

    model: Callable  # keras.Model
    image_size: int
    describe: str  # for the report: which model, built how
    classes: list[str] | None  # None: ImageNet, named by decode_predictions
    top_k: Callable[[np.ndarray, int], list[list[tuple[str, float]]]] | None = None


# --------------------------------------------------------------------------- inputs


def collect(inputs: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(image files, [(input, error)]): folders are searched recursively for images.

    A file named explicitly is tried whatever its extension; in a folder, only the
    extensions the pipeline reads count and hidden files are left out.
    """
    files: list[str] = []
    errors: list[tuple[str, str]] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                str(p) for p in path.rglob("*")
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                errors.append((item, "no images in this folder "
                               f"({', '.join(sorted(IMAGE_EXTENSIONS))})"))
            files.extend(found)
        elif path.is_file():
            files.append(str(path))
        else:
            errors.append((item, "no such file or folder"))
    return list(dict.fromkeys(files)), errors


def read_classes(path: Path) -> list[str]:
    """Class names from a JSON list (or {"classes": [...]}), a .npz with ``classes``, or text."""
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return [str(c) for c in data["classes"]]
        text = path.read_text(encoding="utf-8")
    except (OSError, KeyError, ValueError) as err:
        raise PredictError(f"cannot read class names from {path}: {err}") from None
    if path.suffix == ".json":
        data = json.loads(text)
        return [str(c) for c in (data["classes"] if isinstance(data, dict) else data)]
    return [line.strip() for line in text.splitlines() if line.strip()]


# --------------------------------------------------------------------------- models


def load_predictor(model_path: Path, classes_path: Path | None, params: Path) -> Predictor:
    import keras

    # Registers the custom layers and schedules, so loading keeps safe_mode on.
    import pipeline.backbone
    import pipeline.bit
    import pipeline.finetune  # noqa: F401

    if not model_path.is_file():
        raise PredictError(f"model {model_path} not found; train it with `dvc repro`, or "
                           "pass --model")
    model = keras.models.load_model(model_path)
    shape = model.input_shape
    if isinstance(shape, list):
        raise PredictError(f"model {model_path} has {len(shape)} inputs; expected one")
    source = classes_path or CLASSES_FROM
    if not source.is_file():
        raise PredictError(f"no class names: {source} not found; pass --classes FILE "
                           "(a JSON list, or one name per line)")
    classes = read_classes(source)
    if len(classes) != model.output_shape[-1]:
        raise PredictError(f"{len(classes)} class names for a model with "
                           f"{model.output_shape[-1]} outputs ({model_path})")
    if len(shape) == 4:
        if shape[1] is None:
            raise PredictError(f"model {model_path} takes images of any size; cannot tell "
                               "which to use")
        return Predictor(model, int(shape[1]), f"{model_path} ({shape[1]} px)", classes)
    if len(shape) == 2:
        return _head_predictor(model, model_path, params, classes)
    raise PredictError(f"model {model_path}: unexpected input shape {shape}")


def _head_predictor(head, model_path: Path, params: Path, classes: list[str]) -> Predictor:
    """The backbone exactly as stages/features.py builds it, then the head."""
    import keras

    from pipeline.backbone import build_backbone
    from pipeline.config import ConfigError, load
    from pipeline.io import read_json
    from pipeline.runtime import seed_everything
    from pipeline.weights import WeightsError, weights_path

    try:
        cfg = load(params)
        record = read_json(paths.WEIGHTS_RECORD)
    except (ConfigError, OSError) as err:
        raise PredictError(f"{model_path} is a head on backbone features, and building the "
                           f"backbone needs params.yaml and {paths.WEIGHTS_RECORD}: {err}"
                           ) from None
    bb = cfg.backbone
    made = paths.METRICS / "features.json"
    if made.is_file():  # the features the head was trained on
        facts = read_json(made)
        if (facts.get("arch"), facts.get("image_size")) != (bb.arch, bb.image_size):
            raise PredictError(
                f"params.yaml's backbone ({bb.arch}, {bb.image_size} px) is not the one the "
                f"head's features came from ({facts.get('arch')}, {facts.get('image_size')} "
                "px); run `dvc repro` first"
            )
    seed_everything(cfg.seed)  # as the features stage: random weights are drawn from it
    try:
        backbone = build_backbone(bb.arch, bb.image_size, weights_path(record))
    except WeightsError as err:
        raise PredictError(str(err)) from None
    if backbone.output_shape[-1] != head.input_shape[-1]:
        raise PredictError(f"backbone gives {backbone.output_shape[-1]} features, the head "
                           f"takes {head.input_shape[-1]}; run `dvc repro` first")
    inputs = keras.Input((bb.image_size, bb.image_size, 3), name="image")
    model = keras.Model(inputs, head(backbone(inputs)), name="backbone_head")
    return Predictor(model, bb.image_size, f"{bb.arch} ({record['source']} weights, "
                     f"{bb.image_size} px) + {model_path}", classes)


def _cached_file(fname: str, url: str, md5: str) -> Path:
    """A Keras-cached file, downloaded if missing; PredictError naming it when offline."""
    import keras

    from pipeline.weights import DOWNLOAD_TIMEOUT, keras_cache_dir

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)  # urlretrieve has no timeout of its own
    try:
        return Path(keras.utils.get_file(
            fname, url, cache_dir=str(keras_cache_dir().parent), cache_subdir="models",
            file_hash=md5, hash_algorithm="md5",
        ))
    except Exception as err:  # noqa: BLE001 - get_file wraps URL errors in plain Exception
        raise PredictError(
            f"{fname} is not cached and cannot be downloaded ({err}).\n"
            f"  Copy it (md5 {md5}) from a machine that has it, or from {url},\n"
            f"  to {keras_cache_dir() / fname}"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def imagenet_class_index() -> dict:
    from keras.src.applications import imagenet_utils

    path = _cached_file(IMAGENET_CLASS_INDEX, imagenet_utils.CLASS_INDEX_PATH,
                        IMAGENET_CLASS_INDEX_MD5)
    return json.loads(path.read_text(encoding="utf-8"))


def imagenet_predictor() -> Predictor:
    """Keras' ImageNet ResNet50 as it is, top included, behind the pipeline's preprocessing."""
    import keras
    from keras.src.applications import imagenet_utils, resnet

    from pipeline.backbone import ResNetPreprocess
    from pipeline.weights import BASE_URL

    problems = []
    try:
        index = imagenet_class_index()
    except PredictError as err:
        problems.append(str(err))
    try:
        weights = _cached_file(IMAGENET_WEIGHTS, BASE_URL + IMAGENET_WEIGHTS,
                               resnet.WEIGHTS_HASHES["resnet50"][0])
    except PredictError as err:
        problems.append(str(err))
    if problems:
        raise PredictError("--imagenet needs Keras' ImageNet files:\n" + "\n".join(problems))
    # decode_predictions would fetch the index itself, from Keras' default cache (which
    # it reads once, at import); hand it the one just checked instead.
    imagenet_utils.CLASS_INDEX = index
    resnet50 = keras.applications.ResNet50(weights=str(weights))
    inputs = keras.Input((IMAGENET_SIZE, IMAGENET_SIZE, 3), name="image")
    model = keras.Model(inputs, resnet50(ResNetPreprocess(name="preprocess")(inputs)))

    def top_k(proba: np.ndarray, k: int) -> list[list[tuple[str, float]]]:
        decoded = keras.applications.resnet.decode_predictions(proba, top=k)
        return [[(name, float(p)) for _, name, p in row] for row in decoded]

    return Predictor(model, IMAGENET_SIZE, f"ResNet50 ImageNet ({weights.name})", None, top_k)


# --------------------------------------------------------------------------- predicting


def _tf_message(err: Exception) -> str:
    text = getattr(err, "message", str(err))
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)  # {{function_node ...}}
    return re.sub(r"\s*\[Op:\w+\]", "", text).strip().splitlines()[0]


def predict(predictor: Predictor, files: list[str], batch_size: int, k: int
            ) -> tuple[list[dict], list[tuple[str, str]]]:
    """(rows path/rank/label/probability, [(file, error)]), in file order."""
    import tensorflow as tf
    from tqdm import tqdm

    from pipeline.data import AUTOTUNE, load_image

    size = predictor.image_size
    ds = (
        tf.data.Dataset.from_tensor_slices((np.arange(len(files)), np.array(files)))
        .map(lambda i, p: (i, load_image(p, size)), num_parallel_calls=AUTOTUNE)
        .ignore_errors()  # a bad file drops out here; it is found again below, by name
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
    proba: dict[int, np.ndarray] = {}
    with tqdm(total=len(files), desc="predict", unit="img", file=sys.stderr,
              disable=len(files) <= batch_size) as bar:
        for index, images in ds:
            out = np.asarray(predictor.model(images, training=False), dtype=np.float64)
            proba.update(zip(index.numpy().tolist(), out, strict=True))
            bar.update(len(index))

    errors = []
    for i, file in enumerate(files):
        if i not in proba:
            try:
                load_image(tf.constant(file), size)
                why = "could not be decoded"
            except (tf.errors.OpError, ValueError) as err:
                why = _tf_message(err)
            errors.append((file, why))

    order = sorted(proba)
    if not order:
        return [], errors
    matrix = np.stack([proba[i] for i in order])
    k = min(k, matrix.shape[1])
    if predictor.top_k is not None:
        tops = predictor.top_k(matrix.astype(np.float32), k)
    else:
        names = predictor.classes or []
        best = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
        tops = [[(names[j], float(row[j])) for j in picks]
                for row, picks in zip(matrix, best, strict=True)]
    rows = [
        {"path": files[i], "rank": rank, "label": label, "probability": round(p, 6)}
        for i, top in zip(order, tops, strict=True)
        for rank, (label, p) in enumerate(top, start=1)
    ]
    return rows, errors


def table(rows: list[dict]) -> str:
    """A plain aligned table; paths repeat only on their first row."""
    header = ("path", "rank", "label", "probability")
    body = []
    for row in rows:
        path = row["path"] if row["rank"] == 1 else ""
        body.append((path, str(row["rank"]), row["label"], f"{row['probability']:.4f}"))
    widths = [max(len(r[c]) for r in [header, *body]) for c in range(4)]
    line = "  ".join(f"{{:{'>' if c in (1, 3) else '<'}{w}}}" for c, w in enumerate(widths))
    return "\n".join(line.format(*r).rstrip() for r in [header, *body])


def write_output(path: Path, rows: list[dict], errors: list[tuple[str, str]], model: str,
                 k: int) -> None:
    from pipeline.io import atomic_path, write_json

    if path.suffix == ".json":
        by_path: dict[str, list[dict]] = {}
        for row in rows:
            by_path.setdefault(row["path"], []).append(
                {key: row[key] for key in ("rank", "label", "probability")})
        write_json(path, {
            "model": model,
            "top_k": k,
            "predictions": [{"path": p, "top": top} for p, top in by_path.items()],
            "errors": [{"path": p, "error": e} for p, e in errors],
        })
    else:
        with atomic_path(path, suffix=".csv") as tmp, open(tmp, "w", newline="",
                                                           encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=["path", "rank", "label", "probability"])
            writer.writeheader()
            writer.writerows(rows)


# --------------------------------------------------------------------------- CLI


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.predict",
        description="Top-k labels for images (and folders of images) from a trained model.",
    )
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER")
    parser.add_argument("--model", type=Path, help="a .keras model of the pipeline: "
                        f"an image model (models/finetune/<name>.keras) or the head "
                        f"({paths.HEAD_MODEL}); default: the first of "
                        f"{', '.join(str(m) for m in DEFAULT_MODELS)} that exists")
    parser.add_argument("--classes", type=Path, help="class names: a JSON list, one name a "
                        f"line, or a .npz with `classes` (default: {CLASSES_FROM})")
    parser.add_argument("--top-k", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--output", type=Path, help="also write the rows to a .csv or .json")
    parser.add_argument("--imagenet", action="store_true",
                        help="Keras' ImageNet ResNet50 with its 1000-class top, as it is")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml, for the backbone of a head model")
    args = parser.parse_args(argv)
    if args.top_k < 1 or args.batch_size < 1:
        parser.error("--top-k and --batch-size must be at least 1")
    if args.output is not None and args.output.suffix not in (".csv", ".json"):
        parser.error(f"--output {args.output}: the name must end in .csv or .json")
    if args.imagenet and (args.model or args.classes):
        parser.error("--imagenet uses its own model and classes: drop --model/--classes")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    files, errors = collect(args.inputs)
    for item, why in errors:
        print(f"error: {item}: {why}", file=sys.stderr)
    if not files:
        print("error: no images to predict", file=sys.stderr)
        return 2
    try:
        if args.imagenet:
            predictor = imagenet_predictor()
        else:
            model = args.model or next((m for m in DEFAULT_MODELS if m.is_file()),
                                       DEFAULT_MODELS[-1])
            predictor = load_predictor(model, args.classes, args.params)
    except PredictError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"model: {predictor.describe}", file=sys.stderr)

    rows, unreadable = predict(predictor, files, args.batch_size, args.top_k)
    for file, why in unreadable:
        print(f"error: {file}: cannot read the image ({why}); skipped", file=sys.stderr)
    if rows:
        print(table(rows))
    if args.output is not None:
        write_output(args.output, rows, errors + unreadable, predictor.describe, args.top_k)
        print(f"wrote {args.output}", file=sys.stderr)
    failed = len(errors) + len(unreadable)
    if failed:
        print(f"{failed} input(s) could not be predicted (see above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
