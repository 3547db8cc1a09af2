"""The export: every format agrees with the Keras model, failures are reported, T is baked in.

Tiny networks at 32 px (a ResNet50 would take minutes): an image classifier, and the
pipeline's own head (its Normalization layer is what once broke TFLite and ONNX) chained
behind a small convolutional backbone by the function the export uses for the head.
"""

from __future__ import annotations

import importlib.util
import json
import re
import typing
from pathlib import Path

import numpy as np
import pytest
from helpers import ROOT, params, repo_params, sideways_jpeg, write_params
from PIL import Image

SIZE = 32
CLASSES = ["a", "b", "c"]


def tiny_classifier(seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0)(inputs)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    return keras.Model(inputs, outputs)


def head_behind_backbone():
    """The pipeline's head (Normalization, dropout, softmax) behind a small conv backbone."""
    import keras

    from pipeline.models.classifier import backbone_with_head
    from pipeline.models.head import build_head

    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Conv2D(6, 3, strides=2, activation="relu")(inputs)
    backbone = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x), name="backbone")
    features = np.random.default_rng(1).normal(20.0, 5.0, (40, 6)).astype("float32")
    return backbone_with_head(backbone, build_head(features, len(CLASSES), 0.2, 1e-4))


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """Smooth random pictures at 48 px (resized to 32 by the decoder), JPEG and PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        low = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
        image = Image.fromarray(low).resize((48, 48), Image.BILINEAR)
        path = folder / f"{i}.{'jpg' if i % 2 else 'png'}"
        image.save(path, quality=90) if i % 2 else image.save(path)
        files.append(path)
    return files


def images_of(files: list[Path], labels: list[int] | None = None):
    from pipeline.data.input import image_dataset
    from pipeline.export.samples import Images

    labels = np.array(labels if labels is not None else [i % 3 for i in range(len(files))])
    ds = image_dataset(np.array([str(f) for f in files]), labels, SIZE, 8)
    pixels = np.concatenate([x for x, _ in ds.as_numpy_iterator()])
    return Images(pixels, labels, np.array([f.read_bytes() for f in files], dtype=object))


def settings(**changes):
    from pipeline.core.params import ExportParams

    return ExportParams(**(repo_params()["export"] | {"latency_repeats": 3,
                                                      "batch_size": 4} | changes))


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> tuple[object, object]:
    folder = tmp_path_factory.mktemp("pictures")
    return images_of(write_images(folder / "test", 10)), images_of(
        write_images(folder / "train", 12, seed=1))


def int8_tensors(path: Path) -> int:
    import tensorflow as tf

    details = tf.lite.Interpreter(model_path=str(path)).get_tensor_details()
    return sum(d["dtype"] == np.int8 for d in details)


def rows_by_format(rows: list[dict]) -> dict[str, dict]:
    return {r["format"]: r for r in rows}


def flip_averaged_classifier():
    """A classifier saved with test-time flip averaging (a recipe's ``flip_tta``): the
    mirror and the average are in the graph, so every format must carry them."""
    from pipeline.models.flip import flip_averaged

    return flip_averaged(tiny_classifier())


@pytest.mark.parametrize("build", [tiny_classifier, head_behind_backbone,
                                   flip_averaged_classifier],
                         ids=["classifier", "head_behind_backbone", "flip_averaged"])
def test_every_format_agrees_with_keras(build, pictures, tmp_path):
    from pipeline.export.formats import export_all

    test, train = pictures
    rows = rows_by_format(export_all(build(), SIZE, tmp_path, test, train, settings()))
    for name in ("keras", "saved_model", "saved_model_bytes", "tflite", "onnx"):
        row = rows[name]
        assert row["status"] == "ok", row
        assert row["agreement"] == 1.0 and row["max_abs_diff"] <= 1e-4, row
        assert row["latency_ms_p95"] >= row["latency_ms_p50"] > 0
        assert row["batch_images_per_second"] > 0 and row["size_bytes"] > 0
    int8 = rows["tflite_int8"]
    assert int8["status"] == "ok" and 0 <= int8["agreement"] <= 1, int8
    assert int8_tensors(tmp_path / "model_int8.tflite") and not int8_tensors(
        tmp_path / "model.tflite")
    assert {p.name for p in tmp_path.iterdir()} == {
        "model.keras", "saved_model", "model.tflite", "model_int8.tflite", "model.onnx"}


def test_bytes_signature_decodes_as_training_does(pictures, tmp_path):
    """serving_default on a JPEG's and a PNG's bytes = the images signature on the pixels
    pipeline.data.input.load_image gives (what the Keras model was evaluated on)."""
    import tensorflow as tf

    from pipeline.export.savedmodel import write_savedmodel

    test, _ = pictures
    write_savedmodel(tiny_classifier(), SIZE, tmp_path / "sm")
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    from_bytes = loaded.signatures["serving_default"](
        image_bytes=tf.constant(test.encoded[:2]))["probabilities"].numpy()
    from_pixels = loaded.signatures["images"](
        images=tf.constant(test.pixels[:2]))["probabilities"].numpy()
    assert from_bytes.shape == (2, len(CLASSES))
    np.testing.assert_allclose(from_bytes, from_pixels, atol=1e-6)


@pytest.mark.parametrize("upright", [True, False], ids=["on", "off"])
def test_savedmodel_bytes_signature_orients_as_the_card_says(upright, tmp_path):
    """serving_default turns a phone photo by its EXIF tag exactly when the model was
    trained so (card.json's exif_orientation, passed down with the test images)."""
    import keras
    import tensorflow as tf

    from pipeline.data.input import decode_image
    from pipeline.export.formats import export_all
    from pipeline.export.samples import Images

    keras.utils.set_random_seed(2)  # a dense layer on the pixels: the layout matters
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(len(CLASSES), activation="softmax")(flat))
    data = sideways_jpeg(seed=5)
    pixels = {turn: decode_image(tf.constant(data), SIZE, turn).numpy()[None]
              for turn in (True, False)}
    test = Images(pixels[upright], np.array([0]), np.array([data], dtype=object), upright)
    rows = rows_by_format(export_all(model, SIZE, tmp_path, test, None,
                                     settings(formats=["saved_model"])))
    assert rows["saved_model_bytes"]["status"] == "ok", rows["saved_model_bytes"]
    loaded = tf.saved_model.load(str(tmp_path / "saved_model"))
    got = loaded.signatures["serving_default"](image_bytes=tf.constant([data]))
    np.testing.assert_allclose(got["probabilities"].numpy(), model.predict(pixels[upright]),
                               atol=1e-5)
    # the check can fail: the other decode gives other probabilities
    assert np.abs(model.predict(pixels[not upright]) - model.predict(pixels[upright])).max() > 1e-3


def test_a_failing_format_is_reported_not_skipped(pictures, tmp_path, monkeypatch):
    import pipeline.export.onnx as onnx_export
    from pipeline.export.formats import export_all

    def broken(model, size):
        raise NotImplementedError("no ONNX kernel for op FancyOp")

    monkeypatch.setattr(onnx_export, "to_onnx", broken)
    test, train = pictures
    rows = rows_by_format(export_all(tiny_classifier(), SIZE, tmp_path, test, train,
                                     settings(formats=["tflite", "onnx"])))
    assert rows["onnx"]["status"] == "failed"
    assert "FancyOp" in rows["onnx"]["reason"] and "agreement" not in rows["onnx"]
    assert not (tmp_path / "model.onnx").exists()
    assert rows["tflite"]["status"] == "ok"
    for name in ("saved_model", "saved_model_bytes", "tflite_int8"):
        assert rows[name]["status"] == "not requested"


def test_temperature_is_baked_into_every_format(pictures, tmp_path):
    from pipeline.export.formats import export_all
    from pipeline.models.temperature import with_temperature

    test, train = pictures
    raw = tiny_classifier()
    p = raw.predict(test.pixels, verbose=0)
    calibrated = with_temperature(raw, 3.0)
    rows = rows_by_format(export_all(calibrated, SIZE, tmp_path, test, train,
                                     settings(formats=["tflite"])))
    assert rows["tflite"]["status"] == "ok"
    from pipeline.export.tflite import TFLiteRunner

    got = TFLiteRunner((tmp_path / "model.tflite").read_bytes()).predict(test.pixels)
    logits = np.log(p) / 3.0
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got - p).max() > 1e-3  # a real change, not the raw model


# --------------------------------------------------------------------------- the stage


def stage_main():
    spec = importlib.util.spec_from_file_location(
        "export_stage", Path(__file__).resolve().parents[1] / "stages" / "export.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project after evaluate: the head (worse) and a tiny scratch model ``tiny`` (all
    right, temperature 2), its test and train images, manifest and predictions."""
    from pipeline.evaluation import predictions

    monkeypatch.chdir(tmp_path)
    rows = []
    for split, count in (("train", 9), ("test", 6)):
        for i, f in enumerate(write_images(tmp_path / "images" / split, count, seed=len(rows))):
            rows.append({"path": f"{split}/{f.name}", "label": CLASSES[i % 3], "split": split})
    (tmp_path / "data").mkdir()
    Path("data/manifest.csv").write_text(
        "path,label,split\n" + "".join(f"{r['path']},{r['label']},{r['split']}\n"
                                       for r in rows))
    scratch = {"tiny": repo_params()["scratch"]["wrn"] | {"image_size": SIZE}}
    Path("data/source.json").write_text(json.dumps({"source": "images", "root": "images"}))
    Path("data/weights.json").write_text(json.dumps({"arch": "resnet50", "requested": "auto",
                                                     "source": "random", "seed": 42}))
    Path("reports/data").mkdir(parents=True)
    Path("reports/data/prepare.json").write_text('{"images": 15, "classes": 3}')
    write_params(tmp_path, {"data.source": "images", "finetune": {}, "scratch": scratch,
                            "export.latency_repeats": 3, "export.int8_images": 4,
                            "export.batch_size": 4})
    Path("models").mkdir()
    tiny_classifier().save("models/tiny.keras")
    test = [r for r in rows if r["split"] == "test"]
    files = np.array([r["path"] for r in test])
    labels = np.array([CLASSES.index(r["label"]) for r in test])
    for name, right in (("head", labels[::-1] * 0), ("tiny", labels)):
        card = {"family": name, "input": "features" if name == "head" else "image",
                "image_size": SIZE, "classes": CLASSES,
                "train_seconds": 2.0 if name == "head" else 1.0,
                "trainable_params": 10}
        Path(f"models/{name}.json").write_text(json.dumps(card))
        proba = np.eye(len(CLASSES))[right] * 0.9 + 0.1 / len(CLASSES)
        predictions.write(predictions.frame(files, labels, proba, CLASSES),
                          Path(f"reports/predictions/{name}.csv"))
        Path("metrics/evaluate").mkdir(parents=True, exist_ok=True)
        metrics = {"accuracy": float(np.mean(right == labels))}
        metrics |= {"temperature": 2.0} if name == "tiny" else {}
        Path(f"metrics/evaluate/{name}.json").write_text(json.dumps(metrics))
        Path("reports/runs/evaluate").mkdir(parents=True, exist_ok=True)  # its run facts
        Path(f"reports/runs/evaluate/{name}.json").write_text(json.dumps(
            {"inference_images_per_second": 50.0, "runtime": "tensorflow float32",
             "shipped_params": 1000, "shipped_mb": 0.01, "machine": "a CPU"}))
    return tmp_path


def test_stage_exports_the_recommended_model_with_its_temperature(project):
    from pipeline.core.params import load

    stage_main()(load())
    export = json.loads(Path("reports/export.json").read_text())
    card = json.loads(Path("artifacts/classifier/card.json").read_text())
    assert export["model"] == card["model"] == "tiny"
    assert export["temperature"] == card["temperature"] == 2.0
    assert card["exif_orientation"] is True  # a card from before the key: trained turned
    assert card["max_pixels"] == load().data.images.max_pixels  # the rule its data passed
    assert export["test_images"] == 6
    formats = export["formats"]
    assert {f: r["status"] for f, r in formats.items() if f != "tflite_int8"} == {
        f: "ok" for f in ("keras", "saved_model", "saved_model_bytes", "tflite", "onnx")}
    # int8 has a bar of its own: at most one accuracy point lost, or it says it is below it.
    int8 = formats["tflite_int8"]
    assert int8["status"] == ("ok" if int8["accuracy_change"] >= -0.01 else "below target")
    # The metrics: each format's agreement, a number; sizes and timings are run facts.
    metrics = json.loads(Path("metrics/export.json").read_text())
    assert metrics == {f"{f}_agreement": r["agreement"] for f, r in formats.items()
                       if "agreement" in r} and len(metrics) == 6
    assert not any("latency" in k or "size" in k for r in formats.values() for k in r)
    facts = json.loads(Path("reports/runs/export.json").read_text())
    assert set(facts["formats"]) == set(formats) and facts["machine"]
    assert all(f["latency_ms_p95"] >= f["latency_ms_p50"] > 0 and f["size_bytes"] > 0
               for f in facts["formats"].values())
    from pipeline.models.saving import load_model
    from pipeline.models.temperature import temperature_of

    assert temperature_of(load_model("artifacts/classifier/model.keras")) == 2.0
    # The model card travels with the model, and says first that the backbone was random.
    assert Path("artifacts/classifier/README.md").read_text().startswith("> **⚠ RANDOM WEIGHTS")


def test_an_interrupted_export_leaves_the_previous_outputs(project, monkeypatch):
    from pipeline.core.params import load
    from pipeline.export import parity

    main, settings_ = stage_main(), load()
    Path("metrics/export.json").write_text('{"old": true}\n')
    (project / "artifacts/classifier").mkdir(parents=True)
    Path("artifacts/classifier/card.json").write_text('{"model": "old"}\n')
    calls = []
    real = parity.measure

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM through the stage shell
        return real(*args, **kwargs)

    monkeypatch.setattr(parity, "measure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        main(settings_)
    assert Path("metrics/export.json").read_text() == '{"old": true}\n'
    assert not any(Path(f).exists() for f in ("reports/export.json", "reports/runs/export.json"))
    assert Path("artifacts/classifier/card.json").read_text() == '{"model": "old"}\n'
    assert sorted(p.name for p in Path("artifacts").iterdir() if p.name.startswith(".")) == []
    assert sorted(p.name for p in Path("metrics").iterdir()) == ["evaluate", "export.json"]


def test_export_params_are_validated():
    from pipeline.core.params import ParamsError

    with pytest.raises(ParamsError, match=r"export\.formats"):
        params({"export.formats": ["tflite", "tflite"]})
    with pytest.raises(ParamsError, match=r"export\.formats\.0"):
        params({"export.formats": ["torchscript"]})
    with pytest.raises(ParamsError, match=r"export\.int8_images"):
        params({"export.int8_images": 0})



def test_params_accept_exactly_the_export_formats():
    """params.yaml is checked in core, which cannot import the export: ExportFormat is a
    copy of FORMATS' keys. A format added to one and not the other fails this test."""
    from pipeline.core.params import ExportFormat
    from pipeline.export.formats import FORMATS

    assert typing.get_args(ExportFormat) == tuple(FORMATS), (
        "pipeline/core/params.py ExportFormat and pipeline/export/formats.py FORMATS differ: "
        "add the format's name to both, in the same order (docs/export-formats.md)")


def test_the_docs_list_the_export_formats():
    """docs/export-formats.md's table has one row per export.formats name, in order."""
    from pipeline.core.params import ExportFormat

    text = (ROOT / "docs" / "export-formats.md").read_text(encoding="utf-8")
    assert re.findall(r"^\| `(\w+)` \|", text, re.MULTILINE) == list(
        typing.get_args(ExportFormat))

def run_report():
    spec = importlib.util.spec_from_file_location(
        "report_stage", Path(__file__).resolve().parents[1] / "stages" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from pipeline.core.params import load

    module.main(load())


def test_report_shows_the_formats_of_the_model_it_recommends(project):
    from pipeline.core.errors import PipelineError

    Path("metrics/validation.json").write_text('{"warnings": 0}')
    ok = {"file": "model.tflite", "agreement": 1.0, "max_abs_diff": 3e-7, "accuracy": 1.0,
          "accuracy_change": 0.0, "status": "ok"}
    Path("reports/export.json").write_text(json.dumps({
        "model": "tiny", "temperature": 2.0, "test_images": 6, "formats": {
            "tflite": ok,
            "onnx": {"file": "model.onnx", "status": "failed",
                     "reason": "ValueError: no kernel for FancyOp"}}}))
    Path("reports/runs/export.json").write_text(json.dumps({"formats": {  # its run facts
        "tflite": {"size_bytes": 2_500_000, "latency_ms_p50": 1.25, "latency_ms_p95": 2.5,
                   "batch_images_per_second": 800.0}, "onnx": {}}, "machine": "a CPU"}))
    for name in ("head", "tiny"):  # the training curves the report tabulates
        for split in ("train", "eval"):
            folder = Path(f"dvclive/{name}/plots/metrics/{split}")
            folder.mkdir(parents=True)
            for measure in ("loss", "accuracy"):
                (folder / f"{measure}.tsv").write_text(f"step\t{measure}\n0\t0.5\n")
    Path("artifacts/classifier").mkdir(parents=True)
    Path("artifacts/classifier/card.json").write_text('{"model": "head"}')
    with pytest.raises(PipelineError, match=r"artifacts/classifier/card.json is 'head'.*'tiny'"):
        run_report()
    Path("artifacts/classifier/card.json").write_text('{"model": "tiny"}')
    run_report()
    page = Path("reports/report.md").read_text()
    assert "## Formats" in page
    assert "| tflite | model.tflite | 2.5 | 100.0 | 3.0e-07 | 1.2 / 2.5 | 800.0 | ok |" in page
    assert "| onnx | model.onnx | – | – | – | – | – | failed: ValueError: no kernel for " \
           "FancyOp |" in page
    assert "no kernel for FancyOp" in Path("reports/report.html").read_text()
    curves = Path("reports/figures/curves.csv").read_text().splitlines()
    assert curves[0] == "model,split,step,loss,accuracy" and len(curves) == 5


@pytest.mark.parametrize("stage", ["export", "report"])
def test_a_model_without_its_evaluation_is_named(project, stage):
    """A params.yaml entry whose evaluate stage has not run: export and report stop, naming
    the model and the stage to run (they read the model list from params.yaml)."""
    from pipeline.core.errors import PipelineError
    from pipeline.core.params import load

    Path("metrics/evaluate/tiny.json").unlink()
    main = stage_main() if stage == "export" else run_report
    with pytest.raises(PipelineError, match=r"model 'tiny' has no evaluation \(metrics/evaluate/"
                       r"tiny.json missing\): run `dvc repro evaluate_scratch@tiny`"):
        main(load()) if stage == "export" else main()


# --------------------------------------------------------------------------- parity, by hand


class _Runner:
    """A format's runner that returns given probabilities and moves a fake clock."""

    def __init__(self, probabilities: np.ndarray, clock: list[float], seconds: list[float]):
        self.probabilities, self.clock, self.seconds = probabilities, clock, seconds
        self.batches: list[np.ndarray] = []

    def predict(self, batch: np.ndarray) -> np.ndarray:
        self.batches.append(batch)
        self.clock[0] += self.seconds[min(len(self.batches), len(self.seconds)) - 1]
        return self.probabilities[batch[:, 0].astype(int)]


def test_parity_verdict_refuses_a_float_format_that_disagrees_with_keras_anywhere():
    from pipeline.export import parity

    keras_p = np.array([[0.7, 0.3], [0.2, 0.8], [0.55, 0.45]])
    labels = [0, 1, 1]
    same = parity.agreement(keras_p + 1e-4 * np.array([[1, -1]] * 3), keras_p, labels)
    assert same == {"agreement": 1.0, "max_abs_diff": pytest.approx(1e-4),
                    "accuracy": pytest.approx(2 / 3)}
    assert parity.meets_float_target({"agreement": 1.0, "max_abs_diff": 1e-4})  # inclusive
    flipped = keras_p.copy()
    flipped[2] = [0.45, 0.55]  # one image's top class changes
    row = parity.agreement(flipped, keras_p, labels)
    assert row["agreement"] == pytest.approx(2 / 3) and row["accuracy"] == 1.0
    assert not parity.meets_float_target(row)
    assert not parity.meets_float_target({"agreement": 1.0, "max_abs_diff": 1.1e-4})
    assert not parity.meets_float_target({"agreement": 0.999, "max_abs_diff": 0.0})


def test_parity_on_every_input_in_batches_then_latency_and_throughput_on_a_clock(monkeypatch):
    from pipeline.export import parity

    clock = [0.0]
    monkeypatch.setattr(parity.time, "perf_counter", lambda: clock[0])
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [0.25, 0.75], [0.9, 0.1]])
    inputs = np.arange(5, dtype=np.float32)[:, None]  # input i -> probabilities[i]
    runner = _Runner(probabilities, clock, [0.0])
    assert np.array_equal(parity.predict_all(runner, inputs, 2), probabilities)
    assert [len(b) for b in runner.batches] == [2, 2, 1]

    # Latency: 3 untimed warm-up runs, then 4 timed ones of 1, 2, 3 and 10 ms.
    runner = _Runner(probabilities, clock, [0.5] * parity.WARMUP + [0.001, 0.002, 0.003, 0.010])
    times = parity.latency_ms(runner, inputs[:1], repeats=4)
    assert len(runner.batches) == parity.WARMUP + 4
    assert times == {"latency_ms_p50": 2.5, "latency_ms_p95": 8.95}

    # Throughput: a warm-up batch, then every input once in full batches of 4 (cycled):
    # 2 batches of 4 in 0.5 s each -> 8 images per second.
    runner = _Runner(probabilities, clock, [100.0, 0.5, 0.5])
    assert parity.throughput(runner, inputs, batch_size=4) == 8.0
    assert [b[:, 0].tolist() for b in runner.batches[1:]] == [[0, 1, 2, 3], [4, 0, 1, 2]]
    runner = _Runner(probabilities, clock, [100.0, 0.25])
    assert parity.throughput(runner, inputs[:1], batch_size=3) == 12.0  # at least 2 batches
    assert len(runner.batches) == 3

    runner = _Runner(probabilities, clock, [0.002])
    row = parity.measure(runner, inputs, probabilities, [0, 1, 0, 1, 0], repeats=2,
                         batch_size=5)
    assert row == {"agreement": 1.0, "max_abs_diff": 0.0, "accuracy": 1.0,
                   "latency_ms_p50": 2.0, "latency_ms_p95": 2.0,
                   "batch_images_per_second": 2500.0}
    assert runner.batches[-1].shape == (5, 1)  # throughput on the whole inputs
    assert runner.batches[1].shape == (1, 1)  # latency on the first


def test_parity_timings_keep_their_digits_and_cover_every_input_once(monkeypatch):
    from pipeline.export import parity

    clock = [0.0]
    monkeypatch.setattr(parity.time, "perf_counter", lambda: clock[0])
    probabilities = np.eye(9)
    inputs = np.arange(9, dtype=np.float32)[:, None]
    runner = _Runner(probabilities, clock, [0.5] * parity.WARMUP + [0.0012345, 0.0054321])
    assert parity.latency_ms(runner, inputs[:1], repeats=2) == {
        "latency_ms_p50": 3.333, "latency_ms_p95": 5.222}  # ms, three decimals
    # 9 inputs in batches of 4: three batches (the last one cycled), 12 images in 0.9 s.
    runner = _Runner(probabilities, clock, [100.0, 0.3])
    assert parity.throughput(runner, inputs, batch_size=4) == 13.3
    assert [b[:, 0].tolist() for b in runner.batches[1:]] == [
        [0, 1, 2, 3], [4, 5, 6, 7], [8, 0, 1, 2]]
