"""Inference with a saved model: images in, class probabilities out, as training saw them.

The model is a :class:`pipeline.models.trained.TrainedModel`: images go through its
decode (the decoder and resize of training and evaluation, with the EXIF orientation as
the model was trained: its card's ``exif_orientation``) and its forward pass on the
inference runtime; the models carry their own normalisation. Before any
pixel is decoded, each must pass the pipeline's pixel rule (pipeline.core.pixels) at
the limit its card records (``max_pixels``), else params.yaml's
``data.images.max_pixels``. A head (whose input is a feature vector) is chained behind
the backbone built exactly as the features stage built it: params.yaml's ``backbone``
section, the weights record of ``data/weights.json``, and the same seed when those
weights are random.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipeline.core import paths
from pipeline.core.errors import PipelineError
from pipeline.core.pixels import DEFAULT_MAX_PIXELS, TooManyPixels, check_pixels, header_pixels
from pipeline.models.trained import TrainedModel, recorded_temperature

# The recommended model (the report stage exports it), else the head behind its backbone.
DEFAULT_MODELS = (paths.BEST / "model.keras", paths.HEAD_MODEL)
CLASSES_FROM = paths.FEATURES / "test.npz"  # when a model has no card
IMAGENET_SIZE = 224  # the size Keras' ImageNet ResNet50 was trained at
IMAGENET_WEIGHTS = "resnet50_weights_tf_dim_ordering_tf_kernels.h5"  # with the top
IMAGENET_CLASS_INDEX = "imagenet_class_index.json"
# keras.src.applications.imagenet_utils.decode_predictions's own hash for that file.
IMAGENET_CLASS_INDEX_MD5 = "c2c37ea517e94d9795004a39431a14cb"


class PredictError(PipelineError, RuntimeError):
    """Nothing can be predicted; the message says why and what to do."""


@dataclass
class Predictor:
    """A trained model as predict runs it: raw RGB [0, 255] batches -> class probabilities.

    ``model.card`` is the decode predict uses: ``classes`` (its card's, or --classes),
    ``image_size`` and ``exif_orientation`` (turn JPEGs by their EXIF tag, as the model
    was trained; see trained_orientation)."""

    model: TrainedModel
    describe: str  # for the report: which model, built how
    max_pixels: int = DEFAULT_MAX_PIXELS  # the pixel rule, see trained_max_pixels
    pixels_setting: str = "Pillow's default"  # where max_pixels came from, for the message


# --------------------------------------------------------------------------- models


def card_files(model_path: Path) -> tuple[Path, Path]:
    """Where a model's card may be: artifacts/classifier/card.json, models/<name>.json."""
    return model_path.parent / "card.json", model_path.with_suffix(".json")


def calibration_of(model_path: Path) -> Path | None:
    """Where its evaluate stage recorded the temperature of <project>/models/<name>.keras
    (None for a model elsewhere: no evaluation of the pipeline is about it)."""
    if model_path.parent.name != paths.MODELS.name:
        return None
    return model_path.parent.parent / paths.evaluation(model_path.stem)


def calibrate(model: TrainedModel, model_path: Path, calibrated: bool
              ) -> tuple[TrainedModel, str]:
    """(the model with its validation temperature, what the ``model:`` line says of it).

    An exported model carries its Temperature layer already; a pipeline model
    (models/<name>.keras) gets the one its evaluate stage fitted, when recorded."""
    from pipeline.models.temperature import temperature_of

    carried = temperature_of(model.network)
    if carried != 1.0:
        return model, f"temperature {carried:g} (in the model)"
    if not calibrated:
        return model, "uncalibrated"
    record = calibration_of(model_path)
    if record is None:
        return model, f"uncalibrated (not a pipeline model, {paths.MODELS}/<name>.keras)"
    t = recorded_temperature(record)
    if t is None:
        return model, f"uncalibrated (no temperature in {record})"
    return model.calibrated(t), f"temperature {t:g} (from {record})"


def trained_orientation(model_path: Path | None, params: Path) -> bool:
    """Whether to turn photos by their EXIF tag for the model at ``model_path``: as its card
    says (the decode it was trained on, whatever params.yaml says now); for a model without
    a card, params.yaml's ``data.images.exif_orientation``; with neither, yes."""
    from pipeline.core.io import read_json
    from pipeline.core.params import ParamsError, load
    from pipeline.models.card import orientation_of

    card = None if model_path is None else next(
        (c for c in card_files(model_path) if c.is_file()), None)
    if card is not None:
        try:
            return orientation_of(read_json(card))
        except (OSError, ValueError) as err:
            raise PredictError(f"{card}: {err}") from None
    if not params.is_file():
        return True
    try:
        return load(params).data.images.exif_orientation
    except ParamsError as err:
        raise PredictError(str(err)) from None


def trained_max_pixels(model_path: Path | None, params: Path) -> tuple[int, str]:
    """(the pixel limit, where it came from) for the model at ``model_path``: its card's
    ``max_pixels`` (the rule its data passed, whatever params.yaml says here), else
    params.yaml's ``data.images.max_pixels``, else Pillow's default."""
    from pipeline.core.io import read_json
    from pipeline.core.params import ParamsError, load
    from pipeline.core.pixels import limit_of

    card_file = None if model_path is None else next(
        (c for c in card_files(model_path) if c.is_file()), None)
    card = None
    if card_file is not None:
        try:
            card = read_json(card_file)
            if isinstance(card, dict) and card.get("max_pixels") is not None:
                return limit_of(card, None)
        except (OSError, ValueError) as err:
            raise PredictError(f"{card_file}: {err}") from None
    try:
        params_limit = load(params).data.images.max_pixels if params.is_file() else None
    except ParamsError as err:
        raise PredictError(str(err)) from None
    return limit_of(None, params_limit)


def load_predictor(model_path: Path, classes_path: Path | None, params: Path,
                   calibrated: bool = False) -> Predictor:
    """The model at ``model_path`` as a Predictor; ``calibrated``: with the temperature
    evaluate fitted for it (a model that carries its own keeps it either way)."""
    from pipeline.models.saving import ModelFileError

    if not model_path.exists():
        raise PredictError(f"model {model_path} not found; train it with `dvc repro`, or "
                           "pass --model")
    try:
        loaded = TrainedModel.load(model_path)
    except ModelFileError as err:
        raise PredictError(f"--model {err}") from None
    trained, temperature = calibrate(loaded, model_path, calibrated)
    model = trained.network
    shape = model.input_shape
    if isinstance(shape, list):
        raise PredictError(f"model {model_path} has {len(shape)} inputs; expected one")
    source = classes_path or next((c for c in card_files(model_path) if c.is_file()),
                                  CLASSES_FROM)
    if not source.is_file():
        raise PredictError(f"no class names: {source} not found; pass --classes FILE "
                           "(a JSON list, or one name per line)")
    classes = read_classes(source)
    if len(classes) != model.output_shape[-1]:
        raise PredictError(f"{len(classes)} class names for a model with "
                           f"{model.output_shape[-1]} outputs ({model_path})")
    exif_orientation = trained_orientation(model_path, params)
    pixels = trained_max_pixels(model_path, params)
    decode = {"classes": classes, "exif_orientation": exif_orientation}
    if len(shape) == 4:
        if shape[1] is None:
            raise PredictError(f"model {model_path} takes images of any size; cannot tell "
                               "which to use")
        image = replace(trained, card=decode | {"image_size": int(shape[1])})
        return Predictor(image, f"{model_path} ({shape[1]} px, "
                         f"{temperature}{_orientation_note(exif_orientation)})", *pixels)
    if len(shape) == 2:
        predictor = _head_predictor(trained, model_path, params, decode)
        predictor.describe += f" ({temperature}{_orientation_note(exif_orientation)})"
        predictor.max_pixels, predictor.pixels_setting = pixels
        return predictor
    raise PredictError(f"model {model_path}: unexpected input shape {shape}")


def _orientation_note(exif_orientation: bool) -> str:
    """What the ``model:`` line adds: only the exception, a model trained without the turn."""
    return "" if exif_orientation else ", EXIF orientation not applied, as in its training"


def _head_predictor(head: TrainedModel, model_path: Path, params: Path, decode: dict
                    ) -> Predictor:
    """The backbone exactly as stages/features.py builds it, then the head; ``decode``:
    the classes and EXIF rule of its card."""
    from pipeline.core.io import read_json
    from pipeline.core.params import ParamsError, load
    from pipeline.models.rebuild import BackboneMismatch
    from pipeline.models.weights import WeightsError

    try:
        settings = load(params)
        record = read_json(paths.WEIGHTS_RECORD)
    except (ParamsError, OSError) as err:
        raise PredictError(f"{model_path} is a head on backbone features, and building the "
                           f"backbone needs params.yaml and {paths.WEIGHTS_RECORD}: {err}"
                           ) from None
    bb = settings.backbone
    made = paths.FEATURES / "info.json"  # the features the head was trained on
    try:
        model = head.on_backbone(bb, settings.seed, record,
                                 read_json(made) if made.is_file() else None)
    except (BackboneMismatch, WeightsError) as err:
        raise PredictError(str(err)) from None
    return Predictor(replace(model, card=decode | {"image_size": bb.image_size}),
                     f"{bb.arch} ({record['source']} weights, {bb.image_size} px) + "
                     f"{model_path}")


def _cached_file(fname: str, url: str, md5: str) -> Path:
    from pipeline.models.weights import WeightsError, keras_cached_file

    try:
        return keras_cached_file(fname, url, md5)
    except WeightsError as err:
        raise PredictError(str(err)) from None


def imagenet_classes() -> list[str]:
    """The 1000 ImageNet class names in output order, from Keras' own class index file."""
    from keras.src.applications import imagenet_utils

    path = _cached_file(IMAGENET_CLASS_INDEX, imagenet_utils.CLASS_INDEX_PATH,
                        IMAGENET_CLASS_INDEX_MD5)
    index = json.loads(path.read_text(encoding="utf-8"))  # {"0": ["n01440764", "tench"], ...}
    return [index[str(i)][1] for i in range(len(index))]


def imagenet_predictor() -> Predictor:
    """Keras' ImageNet ResNet50 as it is, top included, behind the pipeline's preprocessing."""
    import keras
    from keras.src.applications import resnet

    from pipeline.models.backbone import ResNetPreprocess
    from pipeline.models.weights import BASE_URL

    problems = []
    try:
        classes = imagenet_classes()
    except PredictError as err:
        problems.append(str(err))
    try:
        weights = _cached_file(IMAGENET_WEIGHTS, BASE_URL + IMAGENET_WEIGHTS,
                               resnet.WEIGHTS_HASHES["resnet50"][0])
    except PredictError as err:
        problems.append(str(err))
    if problems:
        raise PredictError("--imagenet needs Keras' ImageNet files:\n" + "\n".join(problems))
    resnet50 = keras.applications.ResNet50(weights=str(weights))
    inputs = keras.Input((IMAGENET_SIZE, IMAGENET_SIZE, 3), name="image")
    model = keras.Model(inputs, resnet50(ResNetPreprocess(name="preprocess")(inputs)))
    return Predictor(TrainedModel(model, {"classes": classes, "image_size": IMAGENET_SIZE}),
                     f"ResNet50 ImageNet ({weights.name})")


# --------------------------------------------------------------------------- predicting


def _tf_message(err: Exception) -> str:
    text = getattr(err, "message", str(err))
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", text)  # {{function_node ...}}
    return re.sub(r"\s*\[Op:\w+\]", "", text).strip().splitlines()[0]


def inference_settings(params: Path) -> tuple[str, str]:
    """params.yaml's (inference.runtime, inference.precision); auto, auto without the file
    (a model used outside its project)."""
    from pipeline.core.params import ParamsError, load

    if not params.is_file():
        return "auto", "auto"
    try:
        settings = load(params).inference
    except ParamsError as err:
        raise PredictError(str(err)) from None
    return settings.runtime, settings.precision


def predict(predictor: Predictor, files: list[str], batch_size: int, k: int,
            runtime: str = "auto", precision: str = "auto",
            ) -> tuple[list[dict], list[tuple[str, str]]]:
    """(rows path/rank/label/probability, [(file, error)]), in file order; the model runs on
    ``runtime`` in ``precision`` (params.yaml's inference section). A file over the pixel
    rule is refused from its header, never decoded; one that cannot be decoded is named
    with the decoder's reason."""
    import tensorflow as tf
    from tqdm import tqdm

    from pipeline.data.input import AUTOTUNE
    from pipeline.runtimes.select import RuntimeChoiceError

    model = predictor.model
    try:
        forward = model.forward(runtime, precision)
    except RuntimeChoiceError as err:
        raise PredictError(str(err)) from None

    refused: dict[int, str] = {}
    for i, file in enumerate(files):
        try:  # None (Pillow cannot tell): the decoder below says what is wrong
            check_pixels(header_pixels(file) or 0, predictor.max_pixels, predictor.pixels_setting)
        except TooManyPixels as err:
            refused[i] = str(err)
    kept = [i for i in range(len(files)) if i not in refused]

    ds = (
        tf.data.Dataset.from_tensor_slices((np.array(kept, dtype=np.int64),
                                            np.array([files[i] for i in kept], dtype=str)))
        .map(lambda i, p: (i, model.read_image(p)), num_parallel_calls=AUTOTUNE)
        .ignore_errors()  # a bad file drops out here; it is found again below, by name
        .batch(batch_size)
        .prefetch(AUTOTUNE)
    )
    proba: dict[int, np.ndarray] = {}
    with tqdm(total=len(files), desc="predict", unit="img", file=sys.stderr,
              disable=len(files) <= batch_size) as bar:
        for index, images in ds:
            out = np.asarray(forward(images.numpy()), dtype=np.float64)
            proba.update(zip(index.numpy().tolist(), out, strict=True))
            bar.update(len(index))

    errors = []
    for i, file in enumerate(files):
        if i in refused:
            errors.append((file, refused[i]))
        elif i not in proba:
            try:
                model.read_image(tf.constant(file))
                why = "could not be decoded"
            except (tf.errors.OpError, ValueError) as err:
                why = _tf_message(err)
            errors.append((file, f"cannot read the image ({why})"))

    order = sorted(proba)
    if not order:
        return [], errors
    matrix = np.stack([proba[i] for i in order])
    k = min(k, matrix.shape[1])
    best = np.argsort(-matrix, axis=1, kind="stable")[:, :k]
    tops = [[(model.classes[j], float(row[j])) for j in picks]
            for row, picks in zip(matrix, best, strict=True)]
    rows = [
        {"path": files[i], "rank": rank, "label": label, "probability": round(p, 6)}
        for i, top in zip(order, tops, strict=True)
        for rank, (label, p) in enumerate(top, start=1)
    ]
    return rows, errors


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
