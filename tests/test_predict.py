"""python -m pipeline.predict: tables, files, bad inputs, head models and --imagenet offline."""

from __future__ import annotations

import csv
import json

import keras
import numpy as np
import pytest
from helpers import image_policy, png_bomb, sideways_jpeg, write_bad_models, write_params
from PIL import Image

from pipeline import predict
from pipeline.evaluation import inference
from pipeline.models.backbone import ResNetPreprocess

CLASSES = ["ant", "bee", "cat"]


def tiny_model(size: int = 32, classes: int = 3) -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((size, size, 3))
    x = ResNetPreprocess()(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(x))


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A saved tiny image model, its class names and a folder of images (one nested)."""
    root = tmp_path_factory.mktemp("predict")
    tiny_model().save(root / "model.keras")
    (root / "classes.json").write_text(json.dumps(CLASSES))
    photos = root / "photos"
    (photos / "more").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i, name in enumerate(["a.png", "b.jpg", "more/c.png", "d.gif", "e.bmp"]):
        colour = rng.integers(0, 255, (3,), dtype=np.uint8)
        Image.new("RGB", (40 + i, 30), tuple(int(c) for c in colour)).save(photos / name)
    (photos / ".hidden.png").write_bytes(b"")  # left out of folder searches
    (photos / "notes.txt").write_text("not an image")
    return root


def run(project, *args):
    return predict.main([str(project / "photos"), "--model", str(project / "model.keras"),
                         "--classes", str(project / "classes.json"), *args])


def test_table_csv_and_json(project, tmp_path, capsys):
    assert run(project, "--top-k", "2", "--output", str(tmp_path / "out.csv")) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["path", "rank", "label", "probability"]
    assert len(out) == 1 + 5 * 2
    assert out[1].split()[0].endswith("photos/a.png") and out[2].split()[0] == "2"

    with open(tmp_path / "out.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10 and {r["label"] for r in rows} <= set(CLASSES)
    files = sorted({r["path"] for r in rows})
    assert [f.split("photos/")[1] for f in files] == ["a.png", "b.jpg", "d.gif", "e.bmp",
                                                        "more/c.png"]
    for file in files:
        probs = [float(r["probability"]) for r in rows if r["path"] == file]
        ranks = [int(r["rank"]) for r in rows if r["path"] == file]
        assert ranks == [1, 2] and probs == sorted(probs, reverse=True) and sum(probs) <= 1

    assert run(project, "--top-k", "9", "--batch-size", "2",
               "--output", str(tmp_path / "out.json")) == 0
    data = json.loads((tmp_path / "out.json").read_text())
    assert data["top_k"] == 9 and data["errors"] == [] and len(data["predictions"]) == 5
    for item in data["predictions"]:
        top = item["top"]
        assert [t["rank"] for t in top] == [1, 2, 3]  # k capped at the number of classes
        assert sorted(t["label"] for t in top) == CLASSES
        assert sum(t["probability"] for t in top) == pytest.approx(1, abs=1e-5)


def test_same_predictions_in_one_batch_or_many(project, tmp_path):
    assert run(project, "--output", str(tmp_path / "one.csv"), "--batch-size", "64") == 0
    assert run(project, "--output", str(tmp_path / "many.csv"), "--batch-size", "2") == 0
    assert (tmp_path / "one.csv").read_text() == (tmp_path / "many.csv").read_text()


def test_quiet_keeps_the_table_and_the_errors_only(project, tmp_path, capsys):
    assert predict.main([str(project / "photos"), str(tmp_path / "missing.jpg"), "-q",
                         "--model", str(project / "model.keras"),
                         "--classes", str(project / "classes.json")]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["path", "rank", "label", "probability"]
    assert not any(line.startswith("model:") for line in err.splitlines())
    assert "1 input(s) could not be predicted (see above)" in err


def test_bad_files_are_named_and_skipped(project, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.jpg").write_text("this is not a JPEG")
    (bad / "empty.png").write_bytes(b"")
    good = project / "photos" / "a.png"
    code = predict.main([str(good), str(bad), str(tmp_path / "missing.jpg"),
                         "--model", str(project / "model.keras"),
                         "--classes", str(project / "classes.json"),
                         "--output", str(tmp_path / "out.json")])
    captured = capsys.readouterr()
    assert code == 1
    assert f"{tmp_path / 'missing.jpg'}: no such file or folder" in captured.err
    assert f"{bad / 'text.jpg'}: cannot read the image (Unknown image file format" in captured.err
    assert f"{bad / 'empty.png'}: cannot read the image" in captured.err
    assert "3 input(s) could not be predicted" in captured.err
    assert str(good) in captured.out  # the good one is still predicted
    data = json.loads((tmp_path / "out.json").read_text())
    assert [p["path"] for p in data["predictions"]] == [str(good)]
    assert sorted(e["path"] for e in data["errors"]) == sorted(
        [str(tmp_path / "missing.jpg"), str(bad / "text.jpg"), str(bad / "empty.png")])


def test_a_decompression_bomb_is_refused_unread_and_the_rest_predicted(project, tmp_path,
                                                                      capsys):
    """A 50 KB PNG of 400 M pixels: refused from its header (the decode would take 2 GB),
    in the server's words; the good image is still predicted."""
    png_bomb(tmp_path / "bomb.png")
    good = project / "photos" / "a.png"
    assert predict.main([str(tmp_path / "bomb.png"), str(good), "--model",
                         str(project / "model.keras"), "--classes",
                         str(project / "classes.json")]) == 1
    out, err = capsys.readouterr()
    assert (f"error: {tmp_path / 'bomb.png'}: decompression bomb: 400,000,000 pixels, over "
            "the 89,478,485-pixel cap (params.yaml's data.images.max_pixels); skipped") in err
    assert str(good) in out and "bomb.png" not in out


def test_only_bad_inputs_exit_2_as_the_docs_say(project, tmp_path, capsys):
    """Nothing predicted: exit 2 ("nothing could be done"), not 1, and no output file."""
    (tmp_path / "text.jpg").write_text("not a JPEG")
    png_bomb(tmp_path / "bomb.png")
    assert predict.main([str(tmp_path / "text.jpg"), str(tmp_path / "bomb.png"),
                         "--model", str(project / "model.keras"), "--classes",
                         str(project / "classes.json"),
                         "--output", str(tmp_path / "out.csv")]) == 2
    err = capsys.readouterr().err
    assert "error: no image could be predicted" in err
    assert not (tmp_path / "out.csv").exists()


def test_the_pixel_rule_is_the_model_cards_then_params_yaml(project, tmp_path, capsys):
    """An image of 40 x 30 = 1,200 pixels: refused by a card's max_pixels of 1,000 whatever
    params.yaml says; without the key in the card, by params.yaml's data.images.max_pixels."""
    image = project / "photos" / "a.png"  # 40 x 30
    model = tmp_path / "m.keras"
    tiny_model().save(model)

    def refused(card: dict, limit: int) -> str:
        (tmp_path / "m.json").write_text(json.dumps({"classes": CLASSES} | card))
        params = write_params(tmp_path / "project", {"data.images.max_pixels": limit,
                                                     "inference.runtime": "tensorflow"})
        code = predict.main([str(image), "--model", str(model), "--params", str(params)])
        err = capsys.readouterr().err
        return "" if code == 0 else next(line for line in err.splitlines() if "bomb" in line)

    assert refused({"max_pixels": 1000}, 10**6) == (
        f"error: {image}: decompression bomb: 1,200 pixels, over the 1,000-pixel cap (the "
        "model card's max_pixels); skipped")
    assert refused({}, 1000) == (
        f"error: {image}: decompression bomb: 1,200 pixels, over the 1,000-pixel cap "
        "(params.yaml's data.images.max_pixels); skipped")
    assert refused({"max_pixels": 1200}, 1000) == ""  # the card's rule, at its limit


def test_predict_serve_prepare_and_export_refuse_the_same_images_alike(project, tmp_path,
                                                                       capsys):
    """One rule (pipeline.core.pixels): at a limit of 1,199 pixels a 40 x 30 image is refused
    by all four, in the same words; at 1,200 all four take it."""
    import pandas as pd
    from helpers import check_image, inspect_image

    from pipeline.core.errors import PipelineError
    from pipeline.core.pixels import TooManyPixels
    from pipeline.export.samples import split_images
    from pipeline.serving.uploads import Limits, Upload, UploadError

    image = project / "photos" / "a.png"
    data = image.read_bytes()
    why = str(TooManyPixels(1200, 1199)).split(" (")[0]  # the words; the setting named after
    assert why == "decompression bomb: 1,200 pixels, over the 1,199-pixel cap"
    manifest = pd.DataFrame({"path": ["a.png"], "label": ["ant"], "split": ["test"]})
    model = tmp_path / "m.keras"
    tiny_model().save(model)
    params = write_params(tmp_path / "project", {"inference.runtime": "tensorflow"})
    for limit, refused in ((1199, True), (1200, False)):
        row = inspect_image(image, "a.png", image_policy(max_pixels=limit, min_side=1))
        serve = predict_ = export = ""
        try:
            check_image(Upload("a.png", data), Limits(max_pixels=limit))
        except UploadError as err:
            serve = str(err)
        (tmp_path / "m.json").write_text(json.dumps({"classes": CLASSES, "max_pixels": limit}))
        if predict.main([str(image), "--model", str(model), "--params", str(params)]) == 2:
            predict_ = capsys.readouterr().err
        capsys.readouterr()
        try:
            split_images(manifest, image.parent, "test", CLASSES, 32, max_pixels=limit)
        except PipelineError as err:
            export = str(err)
        found = [row["issue"], serve, predict_, export]
        if refused:
            assert row["action"] == "reject"
            assert all(why in text for text in found), found
        else:
            assert row["action"] != "reject" and found == ["", "", "", ""], found


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "zip-without-model",
                                  "lambda"])
def test_a_bad_model_file_is_one_line_naming_the_option_and_the_file(project, tmp_path,
                                                                     capsys, kind):
    bad = write_bad_models(tmp_path / "bad", project / "model.keras")[kind]
    assert predict.main([str(project / "photos"), "--model", str(bad), "--classes",
                         str(project / "classes.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --model {bad}: ") and err.count("\n") == 1, err
    assert "File not found" not in err and "Traceback" not in err


def test_names_that_are_not_utf8_are_reported_and_skipped(project, tmp_path, capsys):
    """A file and a folder whose names are not UTF-8: each named (as \\xNN) and skipped,
    the rest predicted, the JSON output written."""
    import os
    import shutil

    root = os.fsencode(tmp_path)
    try:  # some filesystems (ZFS utf8only, some overlays) refuse such names outright
        os.mkdir(root + b"/\xff")
    except OSError as e:
        pytest.skip(f"this filesystem refuses a name that is not UTF-8 ({e.strerror})")
    shutil.copy(project / "photos" / "a.png", os.fsdecode(root + b"/caf\xe9.png"))
    shutil.copy(project / "photos" / "b.jpg", os.fsdecode(root + b"/\xff/b.jpg"))
    good = project / "photos" / "e.bmp"
    code = predict.main([os.fsdecode(root + b"/caf\xe9.png"), str(tmp_path), str(good),
                         "--model", str(project / "model.keras"), "--classes",
                         str(project / "classes.json"), "--output", str(tmp_path / "out.json")])
    out, err = capsys.readouterr()
    assert code == 1
    assert f"error: {tmp_path}/caf\\xe9.png: the name is not valid UTF-8 (rename it)" in err
    assert f"error: {tmp_path}/\\xff/b.jpg: the name is not valid UTF-8 (rename it)" in err
    assert str(good) in out
    data = json.loads((tmp_path / "out.json").read_text())
    assert [p["path"] for p in data["predictions"]] == [str(good)]
    assert len(data["errors"]) == 3  # the file named, and both found in the folder


def test_a_fifo_is_not_a_regular_file(project, tmp_path, capsys):
    """Named as a FIFO, not "no such file", and never opened: a reader would block. (A
    writer thread stands by, so that a regression fails instead of hanging.)"""
    import os
    import threading

    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    done, opened = threading.Event(), threading.Event()

    def writer() -> None:  # gives every reader an EOF at once, until the test is done
        while not done.is_set():
            with open(fifo, "wb"):  # blocks until a reader opens it
                if not done.is_set():  # a reader other than the release below
                    opened.set()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    good = project / "photos" / "a.png"
    try:
        code = predict.main([str(fifo), str(good), "--model", str(project / "model.keras"),
                             "--classes", str(project / "classes.json")])
    finally:
        done.set()
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release the waiting writer
        thread.join(timeout=5)
    assert not opened.is_set(), "predict opened the FIFO"
    out, err = capsys.readouterr()
    assert code == 1
    assert f"error: {fifo}: not a regular file but a FIFO (named pipe)" in err
    assert "no such file" not in err and str(good) in out


@pytest.mark.parametrize("args, message", [
    (["--classes", "{wrong}"], "2 class names for a model with 3 outputs"),
    (["--model", "{missing}"], "model.keras not found"),
])
def test_fatal_errors_exit_2(project, tmp_path, capsys, args, message):
    (tmp_path / "wrong.txt").write_text("one\ntwo\n")
    args = [a.format(wrong=tmp_path / "wrong.txt", missing=tmp_path / "model.keras")
            for a in args]
    base = {"--model": str(project / "model.keras"),
            "--classes": str(project / "classes.json")}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [str(project / "photos")] + [x for kv in base.items() for x in kv]
    assert predict.main(argv) == 2
    assert message in capsys.readouterr().err


def test_no_images_and_bad_options(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert predict.main([str(tmp_path / "empty")]) == 2
    assert "no images in this folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as err:
        predict.main([str(tmp_path), "--output", "out.txt"])
    assert err.value.code == 2


def test_head_model_is_chained_behind_the_features_backbone(tmp_path, monkeypatch, project):
    """models/head.keras takes features: the backbone is rebuilt as the features stage did."""
    from tensorflow.python.framework import config as tf_config

    from pipeline.core.process_setup import seed_everything
    from pipeline.data.input import load_image
    from pipeline.models.backbone import build_backbone
    from pipeline.models.features import Features

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {"seed": 7, "backbone.weights": "none", "backbone.image_size": 32,
                            "inference.runtime": "tensorflow"})  # the reference, exactly
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "weights.json").write_text(json.dumps(
        {"arch": "resnet50", "requested": "none", "source": "random", "seed": 7}))
    inputs = keras.Input((2048,))
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)).save(
        tmp_path / "head.keras")
    (tmp_path / "models").mkdir()
    (tmp_path / "head.keras").rename(tmp_path / "models" / "head.keras")
    (tmp_path / "data" / "features").mkdir(parents=True)
    empty = np.zeros((0, 2048), "float32")
    Features(empty, np.zeros(0, "int32"), np.array([], str), np.array(CLASSES)).save(
        tmp_path / "data" / "features" / "test.npz")
    image = project / "photos" / "a.png"

    was_on = tf_config.is_op_determinism_enabled()
    try:
        assert predict.main([str(image), "--top-k", "3", "--output", "out.json"]) == 0
        top = json.loads((tmp_path / "out.json").read_text())["predictions"][0]["top"]
        seed_everything(7)  # what the features stage did before building the backbone
        features = build_backbone("resnet50", 32)(load_image(str(image), 32)[None])
    finally:
        if not was_on:
            tf_config.disable_op_determinism()
    head = keras.models.load_model(tmp_path / "models" / "head.keras")
    expected = np.asarray(head(features))[0]
    got = {t["label"]: t["probability"] for t in top}
    assert got == pytest.approx(dict(zip(CLASSES, expected.tolist(), strict=True)), abs=1e-5)


def test_a_head_on_other_features_than_params_backbone_is_refused(tmp_path, monkeypatch,
                                                                   project, capsys):
    """The head's features came from a 64 px backbone, params.yaml's is 32 px: prediction
    (and the export, through the same rebuild) stops, naming the head and both backbones,
    instead of chaining the head behind a backbone it was not trained on."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {"backbone.weights": "none", "backbone.image_size": 32})
    (tmp_path / "data" / "features").mkdir(parents=True)
    (tmp_path / "data" / "weights.json").write_text(json.dumps(
        {"arch": "resnet50", "requested": "none", "source": "random", "seed": 0}))
    (tmp_path / "data" / "features" / "info.json").write_text(json.dumps(
        {"arch": "resnet50", "image_size": 64, "weights": "random"}))
    inputs = keras.Input((2048,))
    (tmp_path / "models").mkdir()
    keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs)).save(
        tmp_path / "models" / "head.keras")
    assert predict.main([str(project / "photos" / "a.png"), "--model", "models/head.keras",
                         "--classes", str(project / "classes.json")]) == 2
    err = capsys.readouterr().err
    assert ("models/head.keras is a head on resnet50 features at 64 px, params.yaml's "
            "backbone is resnet50 at 32 px; run `dvc repro` first") in err


@pytest.mark.offline_attempt
def test_imagenet_offline_names_the_files(project, keras_home, capsys):
    assert predict.main([str(project / "photos"), "--imagenet"]) == 2
    err = capsys.readouterr().err
    assert "--imagenet needs Keras' ImageNet files" in err
    for name in (inference.IMAGENET_WEIGHTS, inference.IMAGENET_CLASS_INDEX):
        assert f"to {keras_home / 'models' / name}" in err
    assert not list((keras_home / "models").glob("*.h5"))


def test_imagenet_decodes_with_keras(project, keras_home, monkeypatch, capsys):
    """The --imagenet path with a stand-in ResNet50 and class index (no 100 MB download):
    the top-k are the index's names for the model's top classes, in order."""
    from keras.src.applications import imagenet_utils

    names = {0: "tench", 1: "goldfish", 2: "great_white_shark", 3: "tiger_shark",
             4: "hammerhead"}
    index = {str(i): [f"n{i:08d}", names.get(i, f"other_{i}")] for i in range(1000)}
    (keras_home / "models" / "index.json").parent.mkdir(exist_ok=True)
    (keras_home / "models" / "index.json").write_text(json.dumps(index))
    keras_own = imagenet_utils.CLASS_INDEX
    monkeypatch.setattr(inference, "_cached_file",
                        lambda fname, url, md5: keras_home / "models" / "index.json")
    # A stand-in whose scores do not depend on the image: these logits, so its top five
    # are known (tiger_shark, tench, hammerhead, goldfish, great_white_shark).
    logits = np.zeros(1000, "float32")
    logits[[3, 0, 4, 1, 2]] = [9.0, 8.0, 7.0, 6.0, 5.0]
    expected = np.exp(logits) / np.exp(logits).sum()

    def fake_resnet50(weights):
        model = tiny_model(inference.IMAGENET_SIZE, classes=1000)
        dense = model.layers[-1]
        dense.set_weights([np.zeros_like(dense.get_weights()[0]), logits])
        return model

    monkeypatch.setattr(keras.applications, "ResNet50", fake_resnet50)
    assert inference.imagenet_classes()[:5] == [names[i] for i in range(5)]  # index order
    assert predict.main([str(project / "photos" / "a.png"), "--imagenet", "--top-k", "5"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[-2] for line in lines] == [
        "tiger_shark", "tench", "hammerhead", "goldfish", "great_white_shark"]
    probs = [float(line.split()[-1]) for line in lines]
    np.testing.assert_allclose(probs, expected[[3, 0, 4, 1, 2]], atol=1e-3)
    assert imagenet_utils.CLASS_INDEX is keras_own  # Keras' private cache is left alone


def test_a_pipeline_model_predicts_with_its_validation_temperature(tmp_path, capsys):
    from pipeline.models.temperature import with_temperature

    models = tmp_path / "models"
    models.mkdir()
    tiny_model().save(models / "tiny.keras")
    (models / "tiny.json").write_text(json.dumps({"classes": CLASSES}))
    (tmp_path / "metrics" / "evaluate").mkdir(parents=True)
    (tmp_path / "metrics" / "evaluate" / "tiny.json").write_text('{"temperature": 3.0}')
    image = tmp_path / "a.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 255, (32, 32, 3), np.uint8)).save(image)

    def top(model, *args) -> tuple[dict, str]:
        out = tmp_path / "out.json"
        assert predict.main([str(image), "--model", str(model), "--output", str(out),
                             *args]) == 0
        line = next(x for x in capsys.readouterr().err.splitlines() if x.startswith("model:"))
        return json.loads(out.read_text())["predictions"][0]["top"][0], line

    calibrated, line = top(models / "tiny.keras")
    assert "temperature 3 (from" in line
    raw, line = top(models / "tiny.keras", "--uncalibrated")
    assert "uncalibrated" in line
    # The same label, with a probability pulled towards 1/3 by T = 3.
    assert calibrated["label"] == raw["label"]
    assert 1 / 3 < calibrated["probability"] < raw["probability"]
    # An exported model carries its temperature: never applied twice.
    with_temperature(keras.models.load_model(models / "tiny.keras"), 3.0).save(
        tmp_path / "model.keras")
    exported, line = top(tmp_path / "model.keras", "--classes", str(models / "tiny.json"))
    assert "temperature 3 (in the model)" in line
    assert exported["probability"] == pytest.approx(calibrated["probability"], abs=1e-5)


def test_help_names_the_real_model_paths(capsys):
    with pytest.raises(SystemExit):
        predict.parse_args(["--help"])
    text = capsys.readouterr().out
    assert "models/<name>.keras" in text and "finetune/" not in text
    assert "--uncalibrated" in text and "labels printed per image" in text


def test_photos_are_turned_as_the_model_card_says_not_as_params_yaml_says(tmp_path, capsys):
    """A JPEG stored sideways and tagged Orientation 6: predict decodes it as the model was
    trained (its card's exif_orientation), whatever params.yaml says now; a model without
    a card follows params.yaml."""

    import tensorflow as tf

    from pipeline.data.input import decode_image

    keras.utils.set_random_seed(3)  # a dense layer on the pixels: the layout matters
    inputs = keras.Input((32, 32, 3))
    flat = keras.layers.Flatten()(keras.layers.Rescaling(1 / 255)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(flat))
    model.save(tmp_path / "m.keras")
    data = sideways_jpeg(seed=4)
    photo = tmp_path / "phone.jpg"
    photo.write_bytes(data)
    expected = {turn: model.predict(decode_image(tf.constant(data), 32,
                                                 turn)[None], verbose=0)[0]
                for turn in (True, False)}
    assert np.abs(expected[True] - expected[False]).max() > 1e-3  # the check can fail

    def predicted(card: bool | None, switch: bool) -> np.ndarray:
        card_file = tmp_path / "m.json"
        card_file.unlink(missing_ok=True)
        if card is not None:
            card_file.write_text(json.dumps({"classes": CLASSES, "exif_orientation": card}))
        params = write_params(tmp_path / "project", {"data.images.exif_orientation": switch,
                                                     "inference.runtime": "tensorflow"})
        (tmp_path / "classes.json").write_text(json.dumps(CLASSES))
        assert predict.main([str(photo), "--model", str(tmp_path / "m.keras"), "--params",
                             str(params), "--classes", str(tmp_path / "classes.json"),
                             "--top-k", "3", "--output", str(tmp_path / "out.json")]) == 0
        top = json.loads((tmp_path / "out.json").read_text())["predictions"][0]["top"]
        return np.array([next(t["probability"] for t in top if t["label"] == c)
                         for c in CLASSES])

    for card, switch, turned in ((False, True, False), (True, False, True),
                                 (None, False, False), (None, True, True)):
        np.testing.assert_allclose(predicted(card, switch), expected[turned], atol=2e-6,
                                   err_msg=f"card {card}, params.yaml {switch}")
    capsys.readouterr()
    predicted(False, True)
    assert "EXIF orientation not applied" in capsys.readouterr().err
