"""Predict with a trained model: top-k labels for images and folders of images.

    python -m pipeline.predict photo.jpg more/ [--model models/head.keras] [--top-k 3]
        [--batch-size 32] [--output out.csv|out.json] [--classes classes.json] [--uncalibrated]
        [--verbose | -q]
    python -m pipeline.predict photo.jpg --imagenet      # the pretrained 1000-class ResNet50

The command line of pipeline.evaluation.inference: images go through the decoder
and resize of training and evaluation, so a prediction sees what the model was
trained on (a JPEG's EXIF Orientation applied or not as the model's card records,
whatever params.yaml says now); a head (``models/head.keras``) is chained behind the backbone built
exactly as the features stage built it. Probabilities are calibrated: a pipeline model
(``models/<name>.keras``) gets the temperature its evaluate stage fitted on the validation
split (``metrics/evaluate/<name>.json``), an exported model carries its own;
``--uncalibrated`` gives a pipeline model's raw probabilities.

Exit status: 0 when every image was predicted, 1 when some inputs could not be
read (each is reported by name and skipped: a missing path, a FIFO or other special
file, a name that is not UTF-8, an image that cannot be decoded or is over the pixel
rule), 2 when nothing could be predicted (no image at all, none readable, or the model
cannot be loaded).
"""

from __future__ import annotations

import argparse
import csv
import logging
import os
import stat
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import logs, paths
from pipeline.core.image_formats import IMAGE_EXTENSIONS
from pipeline.data.sources.names import not_utf8
from pipeline.evaluation.inference import (
    CLASSES_FROM,
    DEFAULT_MODELS,
    PredictError,
    imagenet_predictor,
    inference_settings,
    load_predictor,
    predict,
    trained_max_pixels,
    trained_orientation,
)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- inputs


def collect(inputs: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(image files, [(input, error)]): folders are searched recursively for images.

    A file named explicitly is tried whatever its extension; in a folder, only the
    extensions the pipeline reads count and hidden files are left out. What cannot be
    read as a file (a FIFO, a device, a broken link) and a name that is not UTF-8 (which
    neither TensorFlow nor the output files can carry) are errors, named and skipped.
    """
    files: list[str] = []
    errors: list[tuple[str, str]] = []
    for item in inputs:
        if not_utf8(item):
            errors.append((shown(item), NOT_UTF8))
            continue
        path = Path(item)
        if not path.is_dir():
            why = _not_a_file(path)
            if why:
                errors.append((item, why))
            else:
                files.append(str(path))
            continue
        found, bad = [], []
        for p in sorted(path.rglob("*")):
            if (p.suffix.lower() not in IMAGE_EXTENSIONS or p.is_dir()
                    or any(part.startswith(".") for part in p.relative_to(path).parts)):
                continue
            why = NOT_UTF8 if not_utf8(str(p)) else _not_a_file(p)
            if why:
                bad.append((shown(str(p)), why))
            else:
                found.append(str(p))
        if not found and not bad:
            bad.append((item, "no images in this folder "
                        f"({', '.join(sorted(IMAGE_EXTENSIONS))})"))
        files.extend(found)
        errors.extend(bad)
    return list(dict.fromkeys(files)), errors


NOT_UTF8 = "the name is not valid UTF-8 (rename it)"


def shown(name: str) -> str:
    """A path printable anywhere: bytes that are not UTF-8 as \\xNN escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` cannot be read as an image file, or None for a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a broken link" if path.is_symlink() else "no such file or folder"
    except OSError as err:
        return f"cannot read it ({err.strerror})"
    if stat.S_ISREG(mode):
        return None
    kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special")
    return f"not a regular file but {kind}"


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
    from pipeline.core.io import atomic_path, write_json

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
                        f"an image model ({paths.MODELS}/<name>.keras) or the head "
                        f"({paths.HEAD_MODEL}); default: the first of "
                        f"{', '.join(str(m) for m in DEFAULT_MODELS)} that exists")
    parser.add_argument("--classes", type=Path, help="class names: a JSON list, one name a "
                        f"line, or a .npz with `classes` (default: {CLASSES_FROM})")
    parser.add_argument("--top-k", type=int, default=3,
                        help="labels printed per image, most probable first (default: 3)")
    parser.add_argument("--batch-size", type=int, default=32,
                        help="images per forward pass; changes speed and memory, not the "
                        "probabilities (default: 32)")
    parser.add_argument("--uncalibrated", action="store_true",
                        help="raw probabilities: skip the temperature evaluate fitted "
                        "(metrics/evaluate/<name>.json); an exported model keeps its own")
    parser.add_argument("--output", type=Path, help="also write the rows to a .csv or .json")
    parser.add_argument("--imagenet", action="store_true",
                        help="Keras' ImageNet ResNet50 with its 1000-class top, as it is")
    parser.add_argument("--params", type=Path, default=Path("params.yaml"),
                        help="params.yaml, for the backbone of a head model")
    logs.add_flags(parser)
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
    logs.configure(args.verbosity, info="stderr")  # stdout is the table
    files, errors = collect(args.inputs)
    log.debug("predict: %d image(s) from %s", len(files), ", ".join(map(shown, args.inputs)))
    for item, why in errors:
        log.error(f"error: {item}: {why}")
    if not files:
        log.error("error: no images to predict")
        return 2
    try:
        if args.imagenet:  # not trained here: params.yaml's switch says how to decode
            predictor = imagenet_predictor()
            predictor.model.card["exif_orientation"] = trained_orientation(None, args.params)
            predictor.max_pixels, predictor.pixels_setting = trained_max_pixels(None,
                                                                                args.params)
        else:
            model = args.model or next((m for m in DEFAULT_MODELS if m.is_file()),
                                       DEFAULT_MODELS[-1])
            predictor = load_predictor(model, args.classes, args.params,
                                       calibrated=not args.uncalibrated)
        runtime, precision = inference_settings(args.params)
        log.info(f"model: {predictor.describe}")
        rows, unreadable = predict(predictor, files, args.batch_size, args.top_k, runtime,
                                   precision)
    except PredictError as err:
        log.error(f"error: {err}")
        return 2
    for file, why in unreadable:
        log.error(f"error: {file}: {why}; skipped")
    if not rows:
        log.error("error: no image could be predicted")
        return 2
    print(table(rows))  # the result, not a log line: -q keeps it
    if args.output is not None:
        write_output(args.output, rows, errors + unreadable, predictor.describe, args.top_k)
        log.info(f"wrote {args.output}")
    failed = len(errors) + len(unreadable)
    if failed:
        log.error(f"{failed} input(s) could not be predicted (see above)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
