"""python -m pipeline.serve: the real server on a loopback port, a real HTTP client.

A tiny Keras model (Rescaling, Conv, pooling, softmax at 32 px) and its card make the
model folder. Predictions must equal ``model.predict`` on the decode of training
(pipeline.data.input.decode_image, with the EXIF orientation as the card says) on
TensorFlow float32, and match it on OpenVINO; every bad request must get its 4xx and a
message naming the problem, never a 500; the folder ``dvc get`` fetches must serve.
Hostile clients (raw sockets on 127.0.0.1, bounded in count and time) must not hold it:
silent or half-sent headers, a body a byte a second, more connections than its cap, and
SIGTERM with slow clients connected.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import importlib.util
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import yaml
from helpers import ROOT, encoded, noise, png_bomb, sh, sideways_jpeg, write_bad_models

CLASSES = ["cat", "dog", "fox"]
SIZE = 32
MAX_BYTES = 200_000  # small, so an oversized upload is cheap to send
MAX_IMAGES = 4


JPEG = encoded(noise(90, 70, seed=1), "JPEG", quality=90)
PNG = encoded(noise(50, 64, seed=2), "PNG")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Conv2D(4, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(len(CLASSES), activation="softmax")(x)
    folder = tmp_path_factory.mktemp("best")
    keras.Model(inputs, outputs).save(folder / "model.keras")
    (folder / "card.json").write_text(json.dumps({
        "model": "tiny", "classes": CLASSES, "image_size": SIZE, "input": "image",
        "preprocessing": "raw RGB pixels in [0, 255]"}))
    return folder


@pytest.fixture(scope="module")
def served(model_dir):
    from pipeline.serving.model import load_served

    return load_served(model_dir, "tensorflow", "float32")  # the reference runtime


@contextlib.contextmanager
def running(app, limits=None, server=None) -> Iterator[str]:
    """``app`` under the server serve.py runs (pipeline.serving.connections, with
    ``limits``), or ``server``, in a thread on 127.0.0.1 (a free port); yields its URL."""
    from pipeline.serving.connections import ConnectionLimits, listen, make_server

    sock = listen("127.0.0.1", 0)
    server = server or make_server(app, limits or ConnectionLimits())
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def client(served) -> Iterator[httpx.Client]:
    from pipeline.serving.app import create_app
    from pipeline.serving.uploads import Limits

    app = create_app(served, Limits(max_bytes=MAX_BYTES, max_images=MAX_IMAGES))
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        yield http


def expected(model_dir: Path, *images: bytes) -> np.ndarray:
    """model.predict on the decode and resize of training."""
    import tensorflow as tf

    from pipeline.data.input import decode_image
    from pipeline.models.saving import load_model

    batch = np.stack([decode_image(tf.constant(b), SIZE).numpy() for b in images])
    return load_model(model_dir / "model.keras").predict(batch, verbose=0)


def probabilities(prediction: dict) -> list[float]:
    return [prediction["probabilities"][c] for c in CLASSES]


# --------------------------------------------------------------------------- predictions


def test_multipart_prediction_is_model_predict_on_the_training_decode(client, model_dir):
    from pipeline.serving.model import model_version

    response = client.post("/predict", files={"file": ("photo.jpg", JPEG, "image/jpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == "tiny"
    assert body["version"] == model_version(model_dir)
    (prediction,) = body["predictions"]
    want = expected(model_dir, JPEG)[0]
    np.testing.assert_allclose(probabilities(prediction), want, atol=1e-6)
    assert prediction["name"] == "photo.jpg"
    assert prediction["label"] == CLASSES[int(np.argmax(want))]
    assert [t["label"] for t in prediction["top"]] == [CLASSES[i] for i in np.argsort(-want)]


def test_base64_json_list_matches_multipart_and_model(client, model_dir):
    data_url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    response = client.post("/predict?top_k=2",
                           json=[base64.b64encode(JPEG).decode(), data_url])
    assert response.status_code == 200, response.text
    jpeg, png = response.json()["predictions"]
    assert (jpeg["name"], png["name"]) == ("images[0]", "images[1]")
    assert len(jpeg["top"]) == 2
    np.testing.assert_allclose([probabilities(jpeg), probabilities(png)],
                               expected(model_dir, JPEG, PNG), atol=1e-6)
    multipart = client.post("/predict", files={"file": ("a.png", PNG, "image/png")})
    np.testing.assert_allclose(probabilities(multipart.json()["predictions"][0]),
                               probabilities(png), atol=1e-6)


def test_health_and_metadata(client, model_dir):
    from pipeline.serving.model import model_version

    health = client.get("/health").json()
    assert health == {"status": "ok", "model": "tiny", "version": model_version(model_dir),
                      "runtime": "tensorflow float32"}
    meta = client.get("/metadata").json()
    assert meta["runtime"] == "tensorflow float32" and meta["runtime_note"] is None
    assert meta["exif_orientation"] is True  # a card without the key: trained turned
    assert meta["classes"] == CLASSES and meta["image_size"] == SIZE
    assert meta["version"] == health["version"]
    assert meta["temperature"] == 1.0  # no Temperature layer in the tiny model
    assert meta["input_formats"] == ["JPEG", "PNG", "GIF", "BMP"]
    assert meta["max_bytes"] == MAX_BYTES


def test_version_changes_with_the_model_not_with_files_beside_it(model_dir, tmp_path):
    import shutil

    from pipeline.serving.model import model_version

    copy = tmp_path / "copy"
    shutil.copytree(model_dir, copy)
    assert model_version(copy) == model_version(model_dir)
    (copy / "model.onnx").write_bytes(b"another export")
    assert model_version(copy) == model_version(model_dir)
    card = json.loads((copy / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps(card | {"classes": CLASSES[::-1]}))
    assert model_version(copy) != model_version(model_dir)


def test_the_server_and_the_docs_site_each_have_their_own_default_port():
    """`mkdocs serve` and `python -m pipeline.serve`, both with no flag, side by side: the
    server does not take the docs site's port, and the docs name the port it takes."""
    import re

    from mkdocs.config import load_config

    from pipeline.serve import parse_args

    site = load_config(config_file=str(ROOT / "mkdocs.yml")).dev_addr.port
    port = parse_args([]).port
    assert port != site, f"pipeline.serve and mkdocs serve both default to {port}"
    for page in ("README.md", "docs/serving.md", "docs/getting-started.md"):
        shown = {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", (ROOT / page).read_text())}
        assert shown == {port}, (page, shown)


def test_page_is_one_offline_file(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script src" not in page and "<link" not in page  # nothing fetched from elsewhere
    assert 'fetch(`predict' in page and 'fetch("metadata")' in page


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("upright", [True, False], ids=["on", "off"])
def test_uploads_are_turned_as_the_card_says(model_dir, tmp_path, upright):
    """The card's exif_orientation (the decode the model was trained on) decides whether
    the server turns a phone photo; /metadata says which."""
    import shutil

    import tensorflow as tf

    from pipeline.data.input import decode_image
    from pipeline.serving.app import create_app
    from pipeline.serving.model import load_served

    folder = tmp_path / "best"
    shutil.copytree(model_dir, folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | {"exif_orientation": upright}))
    served = load_served(folder, "tensorflow", "float32")
    photo = sideways_jpeg()
    want = decode_image(tf.constant(photo), SIZE, upright).numpy()
    turned_other_way = decode_image(tf.constant(photo), SIZE, not upright).numpy()
    np.testing.assert_array_equal(served.decode(photo), want)
    assert np.abs(want - turned_other_way).mean() > 20  # the check can fail
    with running(create_app(served)) as url, httpx.Client(base_url=url, timeout=60) as http:
        assert http.get("/metadata").json()["exif_orientation"] is upright
        response = http.post("/predict", files={"file": ("phone.jpg", photo, "image/jpeg")})
    assert response.status_code == 200, response.text
    from pipeline.models.saving import load_model

    expected_ = load_model(folder / "model.keras").predict(want[None], verbose=0)
    np.testing.assert_allclose(probabilities(response.json()["predictions"][0]), expected_[0],
                               atol=1e-6)


def test_a_card_with_a_bad_orientation_is_refused(model_dir, tmp_path):
    import shutil

    from pipeline.serving.model import ModelFolderError, load_served

    folder = tmp_path / "best"
    shutil.copytree(model_dir, folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | {"exif_orientation": "yes"}))
    with pytest.raises(ModelFolderError, match="`exif_orientation` must be true or false"):
        load_served(folder, "tensorflow")


# --------------------------------------------------------------------------- runtimes

needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="OpenVINO is not installed")
# bfloat16 keeps about 3 significant digits: the tiny model's probabilities move by 1e-3.
TOLERANCE = {"float32": 1e-5, "bfloat16": 5e-3}


@pytest.mark.parametrize(("runtime", "precision"), [
    pytest.param("openvino", "float32", marks=needs_openvino),
    pytest.param("auto", "auto", id="auto"),
])
def test_served_probabilities_match_tensorflow_float32(model_dir, runtime, precision):
    """Each runtime the server can run (auto: OpenVINO, bfloat16 on a CPU with native bf16)
    gives TensorFlow float32's probabilities; /health and /metadata say what ran; requests
    in parallel (one OpenVINO infer request, serialised) all get theirs."""
    from concurrent.futures import ThreadPoolExecutor

    from pipeline.serving.app import create_app
    from pipeline.serving.model import load_served

    served = load_served(model_dir, runtime, precision)
    want = expected(model_dir, JPEG, PNG)
    body = [base64.b64encode(JPEG).decode(), base64.b64encode(PNG).decode()]
    with running(create_app(served)) as url, httpx.Client(base_url=url, timeout=60) as http:
        ran = http.get("/health").json()["runtime"]
        meta = http.get("/metadata").json()
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: http.post("/predict", json=body), range(8)))
    assert meta["runtime"] == ran == served.runtime.label
    name, ran_precision = ran.split()
    if runtime == "openvino":
        assert ran == "openvino float32" and "least cosine" in meta["runtime_note"]
    for response in answers:
        assert response.status_code == 200, response.text
        got = [probabilities(p) for p in response.json()["predictions"]]
        np.testing.assert_allclose(got, want, atol=TOLERANCE[ran_precision], err_msg=ran)


def test_without_openvino_auto_falls_back_with_one_line_and_openvino_is_an_error(
        model_dir, monkeypatch, capsys):
    from pipeline.serve import main
    from pipeline.serving.model import load_served

    monkeypatch.setattr("pipeline.runtimes.openvino.available", lambda: False)
    served = load_served(model_dir, "auto", "auto")
    assert served.runtime_info() == {
        "runtime": "tensorflow float32",
        "runtime_note": "fell back: OpenVINO is not installed (pip install openvino)"}
    err = capsys.readouterr().err
    assert err == "inference: falling back to TensorFlow: OpenVINO is not installed " \
                  "(pip install openvino)\n"
    assert main(["--model", str(model_dir), "--port", "0", "--runtime", "openvino"]) == 2
    err = capsys.readouterr().err
    assert err == "error: --runtime: openvino: OpenVINO is not installed (pip install " \
                  "openvino)\n"
    assert main(["--model", str(model_dir), "--port", "0", "--runtime", "tensorflow",
                 "--precision", "bfloat16"]) == 2
    assert "bfloat16 runs on OpenVINO" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", str(model_dir), "--runtime", "onnxruntime"])



def test_runtime_flag_offers_the_registered_runtimes(monkeypatch, capsys):
    """--runtime's choices and help come from the registry: a runtime registered there
    is a choice (and auto's help names it) with no edit of the server."""
    from pipeline.runtimes import registry
    from pipeline.runtimes.registry import Runtime
    from pipeline.serve import parse_args

    monkeypatch.setattr(registry, "RUNTIMES", dict(registry.RUNTIMES))
    registry.register(Runtime("fake", "Fake", "fake_runtime", ("float32", "bfloat16"), ""))
    assert parse_args(["--runtime", "fake"]).runtime == "fake"
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--runtime {auto,tensorflow,openvino,fake}" in shown
    assert "auto (tries OpenVINO then Fake: the first installed" in shown
    assert "bfloat16 (OpenVINO or Fake only)" in shown
    with pytest.raises(SystemExit):
        parse_args(["--runtime", "fakes"])
    assert "invalid choice: 'fakes'" in capsys.readouterr().err

# --------------------------------------------------------------------------- bad requests


def _chunks(total: int, first: bytes = b"[") -> Iterator[bytes]:
    """A body sent chunked (no Content-Length) of about ``total`` bytes."""
    yield first
    for _ in range(total // 10_000):
        yield b" " * 10_000


# A well-formed file part whose data goes on (so only the cap can stop it).
PART = (b'--x\r\nContent-Disposition: form-data; name="file"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n")


def _webp() -> bytes:
    return encoded(noise(40, 40, seed=3), "WEBP")


def _bomb(tmp: Path) -> bytes:
    png_bomb(tmp / "bomb.png")
    return (tmp / "bomb.png").read_bytes()


B64 = base64.b64encode(JPEG).decode()
# (id, request keyword arguments, or a function of a tmp folder giving them, status, message)
BAD = [
    ("not-an-image", {"files": {"file": ("notes.jpg", b"just some text\n", "image/jpeg")}},
     422, "notes.jpg: not an image"),
    ("empty-json-body", {"content": b"", "headers": {"content-type": "application/json"}},
     400, "empty body"),
    ("empty-multipart-body", {"content": b"", "headers": {
        "content-type": "multipart/form-data; boundary=x"}}, 400, "empty body"),
    ("empty-file", {"files": {"file": ("empty.jpg", b"", "image/jpeg")}},
     400, "empty.jpg: empty file"),
    ("oversized", {"files": {"file": ("big.jpg", JPEG + b"\0" * MAX_BYTES, "image/jpeg")}},
     413, "200,000-byte cap"),
    ("oversized-unannounced", {"content": _chunks(2 * MAX_BYTES),
                               "headers": {"content-type": "application/json"}},
     413, "200,000-byte cap"),
    ("oversized-unannounced-multipart", {"content": _chunks(2 * MAX_BYTES, PART), "headers": {
        "content-type": "multipart/form-data; boundary=x"}}, 413, "200,000-byte cap"),
    ("wrong-content-type", {"content": JPEG, "headers": {"content-type": "text/plain"}},
     415, "content type text/plain"),
    ("no-content-type", {"content": JPEG}, 415, "content type (none)"),
    ("part-not-an-image", {"files": {"file": ("notes.txt", JPEG, "text/plain")}},
     415, "notes.txt: content type text/plain"),
    ("truncated-jpeg", {"files": {"file": ("cut.jpg", JPEG[: len(JPEG) // 2], "image/jpeg")}},
     422, "cut.jpg: truncated"),
    ("decompression-bomb", lambda tmp: {"files": {"file": ("bomb.png", _bomb(tmp),
                                                           "image/png")}},
     422, "bomb.png: decompression bomb: 400,000,000 pixels, over the 89,478,485-pixel cap "
     "(--max-pixels)"),
    ("format-not-read", lambda tmp: {"files": {"file": ("a.webp", _webp(), "image/webp")}},
     415, "a.webp: WEBP images are not read"),
    ("bad-base64", {"json": [B64, "not base64!"]}, 400, "images[1]: not valid base64"),
    ("base64-not-an-image", {"json": [B64, base64.b64encode(b"hello").decode()]},
     422, "images[1]: not an image"),
    ("json-not-a-list", {"json": {"image": B64}}, 400, "must be a list of base64"),
    ("json-item-not-a-string", {"json": [B64, 7]}, 400, "images[1]: expected a base64 string"),
    ("invalid-json", {"content": b"[not json", "headers": {"content-type": "application/json"}},
     400, "not valid JSON"),
    ("empty-json-list", {"json": []}, 400, "no image in the request"),
    ("too-many-images", {"json": [B64] * (MAX_IMAGES + 1)}, 413, "at most 4 (--max-images)"),
    ("too-many-image-files", {"files": [("file", ("a.jpg", JPEG, "image/jpeg"))]
                              * (MAX_IMAGES + 1)}, 413, "5 images in one request; at most 4"),
    ("far-too-many-image-files", {"files": [("file", ("a.jpg", JPEG, "image/jpeg"))]
                                  * (MAX_IMAGES + 12)},
     413, "more than 5 images in one request; at most 4 (--max-images)"),
    ("no-file-part", {"files": {"comment": (None, "hello")}}, 400, "no file in the multipart body"),
    ("bad-top-k", {"params": {"top_k": "0"}, "json": [B64]}, 400, "top_k='0'"),
]


@pytest.mark.parametrize(("kwargs", "status", "message"),
                         [pytest.param(*case[1:], id=case[0]) for case in BAD])
def test_bad_request_gets_a_4xx_naming_the_problem(client, tmp_path, kwargs, status, message):
    if callable(kwargs):
        kwargs = kwargs(tmp_path)
    response = client.post("/predict", **kwargs)
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
    assert "Traceback" not in response.text


def test_pixel_cap_is_the_setting_not_only_pillows():
    from helpers import check_image

    from pipeline.serving.uploads import Limits, Upload, UploadError

    check_image(Upload("photo.jpg", JPEG), Limits())
    with pytest.raises(UploadError, match=r"photo.jpg: decompression bomb: 6,300 pixels, "
                       r"over the 1,000-pixel cap") as caught:
        check_image(Upload("photo.jpg", JPEG), Limits(max_pixels=1000))
    assert caught.value.status == 422


def _png_with(damage: str) -> bytes:
    """PNG whose image data is damaged: its zlib stream (with a right checksum), or its
    chunk checksum."""
    import struct
    import zlib

    at = PNG.index(b"IDAT")
    size = struct.unpack(">I", PNG[at - 4:at])[0]
    data = bytearray(PNG[at + 4:at + 4 + size])
    crc = PNG[at + 4 + size:at + 8 + size]
    if damage == "stream":
        data[10:30] = b"\xff" * 20
        crc = struct.pack(">I", zlib.crc32(b"IDAT" + bytes(data)))
    else:
        crc = bytes(b ^ 0xFF for b in crc)
    return PNG[:at + 4] + bytes(data) + crc + PNG[at + 8 + size:]


@pytest.mark.parametrize(("damage", "message"), [
    ("stream", "photo.png: truncated image data"),
    ("checksum", "photo.png: cannot decode the image (broken PNG file (bad header checksum "
                 "in b'IDAT'))"),
])
def test_damaged_image_data_is_a_422_naming_the_upload_and_the_damage(damage, message):
    from helpers import check_image

    from pipeline.serving.uploads import Limits, Upload, UploadError

    with pytest.raises(UploadError) as caught:
        check_image(Upload("photo.png", _png_with(damage)), Limits())
    assert (caught.value.status, str(caught.value)) == (422, message)


def test_a_json_body_is_a_list_of_images_or_an_object_holding_it():
    """`[...]` or `{"images": [...]}`; anything else is a 400 saying what is expected, and a
    part of another content type a 415 naming the formats read."""
    from pipeline.serving.uploads import Limits, Upload, UploadError, check_part, from_json

    want = [Upload("images[0]", JPEG)]
    assert from_json([B64], Limits()) == from_json({"images": [B64]}, Limits()) == want
    with pytest.raises(UploadError) as caught:
        from_json({"image": B64}, Limits())
    assert (caught.value.status, str(caught.value)) == (
        400, 'the JSON body must be a list of base64-encoded images (or {"images": [...]})')
    with pytest.raises(UploadError) as caught:
        from_json([B64, 7], Limits())
    assert str(caught.value) == "images[1]: expected a base64 string, got int"
    with pytest.raises(UploadError) as caught:  # not decoded from the valid characters left
        from_json([B64[:8] + "!!!!" + B64[8:]], Limits())
    assert (caught.value.status, str(caught.value)) == (400, "images[0]: not valid base64")
    with pytest.raises(UploadError) as caught:
        check_part("notes.txt", "text/plain; charset=utf-8", Limits())
    assert (caught.value.status, str(caught.value)) == (
        415, "notes.txt: content type text/plain is not an image (JPEG, PNG, GIF, BMP)")


def test_a_request_over_its_pixel_budget_is_refused_before_any_decode(served):
    """Each image under the per-image cap, together over the request's budget: 413, and
    before any image is decoded (a truncated third image would be a 422 otherwise)."""
    from pipeline.serving.app import create_app
    from pipeline.serving.uploads import Limits

    cut = base64.b64encode(JPEG[: len(JPEG) // 2]).decode()  # its header says 90 x 70
    app = create_app(served, Limits(max_request_pixels=2 * 6300))
    with running(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        over = http.post("/predict", json=[B64, B64, cut])
        within = http.post("/predict", json=[B64, B64])
        meta = http.get("/metadata").json()
    assert over.status_code == 413, over.text
    assert over.json()["error"] == (
        "3 images of 18,900 pixels together, over the 12,600-pixel budget of one request "
        "(--max-request-pixels); send them in several requests")
    assert within.status_code == 200, within.text
    assert meta["max_request_pixels"] == 12_600


def test_the_pixel_rule_is_the_model_cards_unless_a_flag_says_otherwise(model_dir, tmp_path,
                                                                         capsys):
    """An exported model's card records the data.images.max_pixels its data passed: the
    server refuses by it (and says so) unless --max-pixels is given; a bad value in the
    card stops the command with one line."""
    import shutil

    from helpers import check_image

    from pipeline.serve import limits_of, main, parse_args
    from pipeline.serving.uploads import Upload, UploadError

    card = json.loads((model_dir / "card.json").read_text())
    limits = limits_of(parse_args([]), card | {"max_pixels": 5000})
    assert (limits.max_pixels, limits.max_request_pixels) == (5000, 5000)
    with pytest.raises(UploadError, match=r"photo.jpg: decompression bomb: 6,300 pixels, "
                       r"over the 5,000-pixel cap \(--max-pixels, by default the model "
                       r"card's max_pixels\)"):
        check_image(Upload("photo.jpg", JPEG), limits)
    flagged = limits_of(parse_args(["--max-pixels", "7000"]), card | {"max_pixels": 5000})
    check_image(Upload("photo.jpg", JPEG), flagged)
    assert limits_of(parse_args([]), card).max_pixels == 89_478_485  # no record: Pillow's

    folder = tmp_path / "best"
    shutil.copytree(model_dir, folder)
    (folder / "card.json").write_text(json.dumps(card | {"max_pixels": "lots"}))
    assert main(["--model", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {folder / 'card.json'}: `max_pixels` must be a positive whole "
                   "number (got 'lots')\n")


def test_server_still_answers_after_bad_requests(client):
    client.post("/predict", files={"file": ("cut.jpg", JPEG[:100], "image/jpeg")})
    assert client.post("/predict", json=[B64]).status_code == 200


def test_unknown_route_and_method_are_json_4xx(client):
    missing = client.get("/nowhere")
    assert missing.status_code == 404 and "/nowhere" in missing.json()["error"]
    assert client.get("/predict").status_code == 405


def test_unexpected_error_is_a_generic_500_logged_on_the_server(served, caplog):
    from pipeline.serving.app import create_app

    class Failing:
        def predict(self, images):
            raise RuntimeError("secret internal detail")

    app = create_app(dataclasses.replace(served, runtime=Failing()))
    with (caplog.at_level(logging.ERROR, logger="pipeline.serve"), running(app) as url,
          httpx.Client(base_url=url, timeout=60) as http):
        response = http.post("/predict", json=[B64])
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error (details in the server's log)"}
    assert "secret" not in response.text
    assert "secret internal detail" in caplog.text


# --------------------------------------------------------------------------- hostile clients

HEAD = (b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n[")


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _closed_within(sock: socket.socket, seconds: float, trickle: bool = False) -> bytes | None:
    """What the server sent before closing ``sock`` (EOF or reset) within ``seconds``; None if
    it is still open then. ``trickle``: send a byte every 0.2 s meanwhile, as a slow body."""
    received, deadline = b"", time.monotonic() + seconds
    sock.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if trickle:
                with contextlib.suppress(OSError):
                    sock.send(b" ")
            continue
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data
    return None


def test_connections_without_their_headers_are_closed_after_the_header_timeout(served):
    """One connection saying nothing, one sending half a request line: both closed after
    --header-timeout; uvicorn's own settings (keep-alive 1 s, limit_concurrency) leave
    both open, which is why pipeline.serving.connections exists."""
    import uvicorn

    from pipeline.serving.app import create_app
    from pipeline.serving.connections import ConnectionLimits

    app = create_app(served)
    plain = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=1,
                                          limit_concurrency=10))
    for server, closes in ((None, True), (plain, False)):
        with running(app, ConnectionLimits(header_timeout=0.5), server) as url:
            silent = socket.create_connection(("127.0.0.1", _port(url)))
            half = socket.create_connection(("127.0.0.1", _port(url)))
            half.sendall(b"POST /predict HTTP/1.1\r\nHost: te")
            with silent, half:
                time.sleep(1.5)  # the timeout, and time to act on it
                got = [_closed_within(sock, 0.5) for sock in (silent, half)]
            with httpx.Client(base_url=url, timeout=30) as http:  # the server still serves
                assert http.post("/predict", json=[B64]).status_code == 200
        assert got == ([b"", b""] if closes else [None, None]), (server, got)


def test_connections_beyond_the_cap_get_a_503_and_are_closed(served):
    from pipeline.serving.app import create_app
    from pipeline.serving.connections import ConnectionLimits

    with running(create_app(served), ConnectionLimits(max_connections=3)) as url:
        held = [socket.create_connection(("127.0.0.1", _port(url))) for _ in range(3)]
        with socket.create_connection(("127.0.0.1", _port(url))) as extra:
            answer = _closed_within(extra, 5)
        assert answer is not None and answer.startswith(b"HTTP/1.1 503 "), answer
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": (
            "the server has 3 connections open, its cap (--max-connections); try again "
            "shortly")}
        held.pop().close()
        with httpx.Client(base_url=url, timeout=30) as http:
            deadline = time.monotonic() + 5  # until the server has seen the close
            while (status := http.get("/health").status_code) != 200:
                assert time.monotonic() < deadline, status
                time.sleep(0.1)
        for sock in held:
            sock.close()


def test_a_body_sent_a_byte_at_a_time_gets_a_408_and_the_connection_ends(served):
    """--body-timeout counts from the headers to the body's end, however the bytes trickle;
    then the connection ends though the client is still sending."""
    from pipeline.serving.app import create_app
    from pipeline.serving.uploads import Limits

    with (running(create_app(served, Limits(body_timeout=1.0))) as url,
          socket.create_connection(("127.0.0.1", _port(url))) as slow):
        slow.sendall(HEAD)
        began = time.monotonic()
        answer = _closed_within(slow, 8, trickle=True)
        took = time.monotonic() - began
    assert answer is not None, "still open after 8 s"
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"the body did not all arrive within 1 s (--body-timeout)" in answer
    assert took < 5, took  # 1 s, then at most LINGER (2 s) of reading what still comes


def test_a_response_sent_before_the_body_ends_the_connection(served):
    """A route that reads no body answers; a client that announced one cannot then hold
    the connection by sending it slowly."""
    from pipeline.serving.app import create_app

    with (running(create_app(served)) as url,
          socket.create_connection(("127.0.0.1", _port(url))) as sock):
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\nx")
        answer = _closed_within(sock, 6, trickle=True)
    assert answer is not None, "still open after 6 s"
    assert answer.startswith(b"HTTP/1.1 200 ") and b'"status":"ok"' in answer


# --------------------------------------------------------------------------- the command


@pytest.mark.parametrize(("card", "message"), [
    (None, "card.json: No such file"),
    ({"model": "tiny", "image_size": SIZE}, "`classes` must be a list"),
    ({"model": "tiny", "classes": CLASSES, "image_size": "big"}, "`image_size` must be"),
])
def test_a_folder_that_cannot_be_served_is_one_error_line(tmp_path, capsys, card, message):
    from pipeline.serve import main

    folder = tmp_path / "best"
    folder.mkdir()
    (folder / "model.keras").write_bytes(b"not read: the card is checked first")
    if card is not None:
        (folder / "card.json").write_text(json.dumps(card))
    assert main(["--model", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


@pytest.mark.parametrize(("change", "message"), [
    ({"classes": CLASSES[:2]}, "names 2 classes for a model with 3 outputs"),
    ({"image_size": 64}, "says image_size 64, the model takes 32 px"),
])
def test_a_card_that_does_not_fit_the_model_is_refused(model_dir, tmp_path, change, message):
    import shutil

    from pipeline.serving.model import ModelFolderError, load_served

    folder = tmp_path / "best"
    shutil.copytree(model_dir, folder)
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps(card | change))
    with pytest.raises(ModelFolderError, match=message):
        load_served(folder, "tensorflow")


@pytest.mark.parametrize("kind", ["random", "truncated", "empty", "zip-without-model",
                                  "lambda"])
def test_a_bad_model_file_is_one_line_naming_the_option_and_the_file(model_dir, tmp_path,
                                                                     capsys, kind):
    import shutil

    from pipeline.serve import main

    bad = write_bad_models(tmp_path / "bad", model_dir / "model.keras")[kind]
    shutil.copy(model_dir / "card.json", bad.parent)
    assert main(["--model", str(bad.parent), "--port", "0", "--runtime", "tensorflow"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --model {bad}: ") and err.count("\n") == 1, err
    assert "File not found" not in err and "Traceback" not in err


def test_a_missing_folder_says_how_to_make_one(tmp_path, capsys):
    from pipeline.serve import main

    assert main(["--model", str(tmp_path / "nowhere"), "--port", "0"]) == 2
    assert "nowhere not found; run `dvc repro`" in capsys.readouterr().err


# --------------------------------------------------------------------------- dvc get


def test_the_default_model_is_the_artifact_the_export_stage_writes():
    """`python -m pipeline.serve` with no --model serves dvc.yaml's classifier artifact, the
    export stage's output (outside models/, which that stage depends on)."""
    from pipeline.serve import parse_args

    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    path = dvc["artifacts"]["classifier"]["path"]
    assert parse_args([]).model == Path(path) == Path("artifacts/classifier")
    assert path in dvc["stages"]["export"]["outs"]
    assert not any(Path(path).is_relative_to(dep) for dep in dvc["stages"]["export"]["deps"])


def test_the_folder_dvc_get_fetches_serves_and_sigterm_ends_it(model_dir, tmp_path):
    """dvc.yaml's `classifier` artifact path, added to a git + DVC repo, fetched with
    `dvc get` (and `dvc artifacts get` of a registered version), served by the command
    line: one real request succeeds. Then SIGTERM, with a body trickling in a byte at a
    time and a silent connection: the process exits within --shutdown-timeout and a
    little (uvicorn's default waited for ever)."""
    import shutil
    import signal

    from pipeline.serving.model import model_version

    artifact = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]["classifier"]
    repo = tmp_path / "repo"
    shutil.copytree(model_dir, repo / artifact["path"])
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"artifacts": {"classifier": artifact}}))
    sh(tmp_path, "git", "init", "-q", "-b", "main", str(repo))
    sh(repo, "git", "config", "user.name", "serve test")
    sh(repo, "git", "config", "user.email", "serve@example.invalid")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "add", "-q", artifact["path"])
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "the classifier")
    sh(repo, "git", "tag", "-a", "classifier@v1.0.0", "-m", "first version")

    sh(tmp_path, "dvc", "get", str(repo), artifact["path"], "-o", "got")
    sh(tmp_path, "dvc", "artifacts", "get", str(repo), "classifier", "-o", "artifact")
    assert model_version(tmp_path / "artifact") == model_version(model_dir)

    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(ROOT), os.environ["PYTHONPATH"]])}
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.serve", "--model", str(tmp_path / "got"),
         "--port", "0", "--shutdown-timeout", "1", "--header-timeout", "600",
         "--body-timeout", "600"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    sockets: list[socket.socket] = []
    try:
        url, seen = None, []
        deadline = time.monotonic() + 180
        while url is None and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            seen.append(line)
            if line.startswith("serving "):
                url = line.split(" at ")[1].strip()
        assert url, "".join(seen)
        with httpx.Client(base_url=url, timeout=60) as http:
            response = http.post("/predict", files={"file": ("photo.jpg", JPEG, "image/jpeg")})
        assert response.status_code == 200, response.text
        assert response.json()["version"] == model_version(model_dir)

        slow = socket.create_connection(("127.0.0.1", _port(url.rstrip("/"))))
        slow.sendall(HEAD)
        sockets = [slow, socket.create_connection(("127.0.0.1", _port(url.rstrip("/"))))]
        time.sleep(0.5)
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        while proc.poll() is None and time.monotonic() - began < 20:
            with contextlib.suppress(OSError):
                slow.send(b" ")
            time.sleep(0.2)
        took = time.monotonic() - began
        assert proc.poll() is not None, "still running 20 s after SIGTERM"
        assert took < 5, took
    finally:
        for sock in sockets:
            sock.close()
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
