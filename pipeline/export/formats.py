"""Every format of the export, written and measured, each with a status: never skipped.

A format that cannot be had (a converter without a kernel for one of the model's ops,
say) gets ``status: failed`` and the converter's one-line reason; one not asked for in
params.yaml's ``export.formats`` gets ``not requested``. The float formats must agree
with the Keras model on every test image within :data:`parity.FLOAT_TOLERANCE`
(``below target`` otherwise); the int8 model reports its agreement and accuracy change,
and is ``below target`` when it loses more than :data:`INT8_MAX_DROP` of accuracy.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from pipeline.core.params import ExportParams
from pipeline.export import parity
from pipeline.export.samples import Images

# The bar for the quantised model: at most 1 accuracy point lost on the test images.
INT8_MAX_DROP = 0.01
# What a row measures that is no result: a size, and timings that move between two runs
# of one commit on one machine (the export stage writes them as run facts).
RUN_FACT_KEYS = ("size_bytes", "latency_ms_p50", "latency_ms_p95", "batch_images_per_second")


@dataclass(frozen=True)
class Format:
    name: str
    file: str  # under artifacts/classifier/
    # (model, image size, path, int8 calibration images, exif_orientation of the decode)
    write: Callable[[keras.Model, int, Path, Images | None, bool], None]
    runner: Callable[[Path], parity.Runner]
    bytes_input: bool = False  # takes the encoded files, not the pixels
    quantised: bool = False  # held to no float tolerance


class KerasRunner:
    """A Keras model's ``predict_on_batch`` (its compiled predict function)."""

    def __init__(self, model: keras.Model):
        self._model = model

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self._model.predict_on_batch(batch))


def _savedmodel(model: keras.Model, size: int, path: Path, _: Images | None,
                exif_orientation: bool) -> None:
    from pipeline.export.savedmodel import write_savedmodel

    write_savedmodel(model, size, path, exif_orientation)


def _signature(name: str) -> Callable[[Path], parity.Runner]:
    def runner(path: Path) -> parity.Runner:
        from pipeline.export.savedmodel import SavedModelRunner

        return SavedModelRunner(path, name)

    return runner


def _tflite(int8: bool) -> Callable[[keras.Model, int, Path, Images | None, bool], None]:
    def write(model: keras.Model, size: int, path: Path, calibration: Images | None,
              _: bool) -> None:
        from pipeline.export.tflite import to_tflite

        path.write_bytes(to_tflite(model, size, calibration.pixels if int8 else None))

    return write


def _tflite_runner(path: Path) -> parity.Runner:
    from pipeline.export.tflite import TFLiteRunner

    return TFLiteRunner(path.read_bytes())


def _onnx(model: keras.Model, size: int, path: Path, _: Images | None, __: bool) -> None:
    from pipeline.export.onnx import to_onnx

    path.write_bytes(to_onnx(model, size))


def _onnx_runner(path: Path) -> parity.Runner:
    from pipeline.export.onnx import ONNXRunner

    return ONNXRunner(path.read_bytes())


def _keras_runner(path: Path) -> parity.Runner:
    from pipeline.models.trained import TrainedModel

    # The file, reloaded: checks that it round-trips.
    return KerasRunner(TrainedModel.load(path).network)


KERAS = Format("keras", "model.keras", lambda m, s, p, c, o: m.save(p), _keras_runner)
# params.yaml's export.formats name the first column; saved_model gives two rows, one
# per signature, from one folder.
FORMATS: dict[str, list[Format]] = {
    "saved_model": [
        Format("saved_model", "saved_model", _savedmodel, _signature("images")),
        Format("saved_model_bytes", "saved_model", _savedmodel,
               _signature("serving_default"), bytes_input=True),
    ],
    "tflite": [Format("tflite", "model.tflite", _tflite(False), _tflite_runner)],
    "tflite_int8": [Format("tflite_int8", "model_int8.tflite", _tflite(True), _tflite_runner,
                           quantised=True)],
    "onnx": [Format("onnx", "model.onnx", _onnx, _onnx_runner)],
}


def size_bytes(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def one_line(err: BaseException, limit: int = 300) -> str:
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def export_one(fmt: Format, model: keras.Model, size: int, folder: Path, test: Images,
               reference: np.ndarray, calibration: Images | None, settings: ExportParams,
               written: set[str]) -> dict:
    """Write ``fmt`` (once per file) and measure it; a failure is the row's status."""
    row: dict = {"format": fmt.name, "file": fmt.file}
    path = folder / fmt.file
    try:
        if fmt.file not in written:
            fmt.write(model, size, path, calibration, test.exif_orientation)
            written.add(fmt.file)
        row["size_bytes"] = size_bytes(path)
        inputs = test.encoded if fmt.bytes_input else test.pixels
        row |= parity.measure(fmt.runner(path), inputs, reference, test.labels,
                              settings.latency_repeats, settings.batch_size)
    except Exception as err:  # any converter or runtime error: reported, never skipped
        if fmt.file not in written:
            _remove(path)
        return row | {"status": "failed", "reason": one_line(err)}
    if fmt.quantised:
        change = row["accuracy"] - float(np.mean(reference.argmax(axis=1) == test.labels))
        if change >= -INT8_MAX_DROP:
            return row | {"status": "ok"}
        return row | {"status": "below target",
                      "reason": f"int8 loses {-100 * change:.1f} accuracy points (target: at "
                                f"most {100 * INT8_MAX_DROP:g}); ship a float format"}
    if parity.meets_float_target(row):
        return row | {"status": "ok"}
    return row | {"status": "below target",
                  "reason": f"float target: agreement 100 % and max |dp| <= "
                            f"{parity.FLOAT_TOLERANCE:g}"}


def export_all(model: keras.Model, size: int, folder: Path, test: Images,
               calibration: Images | None, settings: ExportParams) -> list[dict]:
    """model.keras, then each requested format, into ``folder``; one row per format."""
    reference = parity.predict_all(KerasRunner(model), test.pixels, settings.batch_size)
    written: set[str] = set()
    rows = [export_one(KERAS, model, size, folder, test, reference, calibration, settings,
                       written)]
    for name, formats in FORMATS.items():
        for fmt in formats:
            if name in settings.formats:
                rows.append(export_one(fmt, model, size, folder, test, reference,
                                       calibration, settings, written))
            else:
                rows.append({"format": fmt.name, "file": fmt.file, "status": "not requested",
                             "reason": "not in params.yaml export.formats"})
    keras_accuracy = float(np.mean(reference.argmax(axis=1) == test.labels))
    for row in rows:
        if "accuracy" in row:
            row["accuracy_change"] = row["accuracy"] - keras_accuracy
    return rows

