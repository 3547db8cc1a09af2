"""The inference runtimes agree with TensorFlow float32, and the head runs without Keras.

Tiny models stand in for the pipeline's: a keras.applications-style functional model
nested in one that starts with ResNetPreprocess (as build_backbone's), a BiT-style
StandardizedConv2D, and a classifier ending in Temperature. Inputs are images the test
draws; outputs are compared row by row with TensorFlow float32's.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import types
import warnings

import keras
import numpy as np
import pytest
from helpers import ROOT

from pipeline.core.params import INFERENCE_RUNTIMES
from pipeline.models.backbone import ResNetPreprocess
from pipeline.models.bit import StandardizedConv2D
from pipeline.models.head import build_head
from pipeline.models.temperature import Temperature, with_temperature
from pipeline.runtimes import registry, select
from pipeline.runtimes.forward import Forward
from pipeline.runtimes.numpy_head import UnsupportedHead, head_probabilities
from pipeline.runtimes.openvino import available
from pipeline.runtimes.registry import Runtime
from pipeline.runtimes.select import RuntimeChoiceError, compile_forward, min_cosine

SIZE = 32
needs_openvino = pytest.mark.skipif(not available(), reason="OpenVINO is not installed")


def images(n: int = 6, seed: int = 1) -> np.ndarray:
    """Smooth colour gradients plus noise, raw RGB in [0, 255] as the pipeline feeds."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, SIZE, dtype=np.float32)
    base = ramp[None, :, None, None] * rng.uniform(0, 255, (n, 1, 1, 3)) \
        + ramp[None, None, :, None] * rng.uniform(0, 255, (n, 1, 1, 3))
    return np.clip(base / 2 + rng.normal(0, 20, base.shape), 0, 255).astype(np.float32)


def backbone() -> keras.Model:
    """Raw images -> pooled features: preprocessing, then a nested functional network."""
    keras.utils.set_random_seed(3)
    inner_in = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same")(inner_in)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = StandardizedConv2D(16, 3, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(x)
    inner = keras.Model(inner_in, keras.layers.GlobalAveragePooling2D()(x), name="resnet")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    return keras.Model(inputs, inner(ResNetPreprocess(name="preprocess")(inputs)))


def classifier() -> keras.Model:
    """The backbone, a softmax layer and a Temperature layer: probabilities out."""
    features = backbone()
    probs = keras.layers.Dense(5, activation="softmax", dtype="float32")(features.output)
    return keras.Model(features.input, Temperature(1.7)(probs))


@pytest.mark.parametrize(("runtime", "precision"), [
    ("tensorflow", "float32"),
    pytest.param("openvino", "float32", marks=needs_openvino),
    pytest.param("openvino", "bfloat16", marks=needs_openvino),
])
def test_every_runtime_agrees_with_tensorflow_float32(runtime, precision):
    x = images()
    for model in (backbone(), classifier()):
        reference = model.predict(x, verbose=0)
        forward = compile_forward(model, runtime, precision)
        out = forward(x)
        assert forward.runtime == runtime
        assert out.shape == reference.shape and out.dtype == np.float32
        if forward.precision == "float32":
            np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-5)
        else:  # the features' bar for bfloat16
            assert min_cosine(out, reference) >= 0.999
        if reference.shape[1] == 5:  # probabilities: same top class, close values
            assert (out.argmax(1) == reference.argmax(1)).all()
            assert np.abs(out - reference).max() < 0.01
        assert len(forward(x[:1])) == 1  # any batch size, as the last batch of a split


@needs_openvino
def test_auto_picks_openvino_and_bfloat16_only_on_a_native_bf16_cpu(monkeypatch):
    model = backbone()
    monkeypatch.setattr(select, "cpu_flags", lambda: {"avx2", "avx512f"})
    plain = compile_forward(model, "auto", "auto")
    assert plain.label() == "openvino float32"
    assert "least cosine" in plain.note
    assert select.resolve_precision("openvino", "auto", {"avx512_bf16"}) == "bfloat16"
    assert select.resolve_precision("openvino", "auto", {"amx_bf16"}) == "bfloat16"
    assert select.resolve_precision("tensorflow", "auto", {"amx_bf16"}) == "float32"


def test_auto_falls_back_to_tensorflow_when_the_other_runtime_disagrees(monkeypatch, capsys):
    model = backbone()
    monkeypatch.setattr("pipeline.runtimes.openvino.available", lambda: True)
    monkeypatch.setattr(  # a runtime that computes something else
        "pipeline.runtimes.openvino.forward",
        lambda m, precision, note="": Forward(lambda b: np.ones((len(b), 16), np.float32),
                                              "openvino", precision))
    forward = compile_forward(model, "auto", "float32")
    assert forward.runtime == "tensorflow"
    assert "disagrees with TensorFlow float32" in forward.note
    assert "falling back to TensorFlow" in capsys.readouterr().err
    np.testing.assert_allclose(forward(images()), model.predict(images(), verbose=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeChoiceError, match="inference.runtime: openvino: .*disagrees"):
        compile_forward(model, "openvino", "float32")


def test_by_default_openvino_runs_bfloat16_on_a_native_bf16_cpu_and_float32_elsewhere(
        monkeypatch):
    """compile_forward(model) is auto and auto: on a CPU with bf16 units OpenVINO is asked
    for bfloat16 (and checked at its bar), on one without, for float32."""
    model = backbone()
    reference = compile_forward(model, "tensorflow", "float32")
    _fake_openvino(monkeypatch, lambda batch: reference(batch))
    for flags, precision in (({"avx2", "avx512_bf16"}, "bfloat16"), ({"avx2"}, "float32")):
        monkeypatch.setattr(select, "cpu_flags", lambda flags=flags: flags)
        chosen = compile_forward(model)
        assert chosen.label() == f"openvino {precision}"
        assert chosen.note == "least cosine to TensorFlow float32 1.000000 on 4 inputs"


def test_a_candidate_exactly_at_its_precisions_bar_is_chosen(monkeypatch):
    model = backbone()
    _fake_openvino(monkeypatch, lambda batch: np.zeros((len(batch), 16), np.float32))
    for precision, bar in select.MIN_COSINE.items():
        monkeypatch.setattr(select, "min_cosine", lambda a, b, bar=bar: bar)
        assert compile_forward(model, "openvino", precision).label() == f"openvino {precision}"


@pytest.mark.parametrize(("message", "why"), [
    ("x" * 500, "x" * 300), ("", "ValueError"), ("two\n  lines", "two lines")])
def test_a_failed_conversion_is_named_in_one_line_of_at_most_300_characters(
        monkeypatch, capsys, message, why):
    """A converter's error (often pages of it) falls back in one line: its text, or its
    type when it has none."""
    model = backbone()
    monkeypatch.setattr("pipeline.runtimes.openvino.available", lambda: True)

    def failing(m, precision, note=""):
        raise ValueError(message)

    monkeypatch.setattr("pipeline.runtimes.openvino.forward", failing)
    assert compile_forward(model, "auto", "float32").note == f"fell back: {why}"
    assert capsys.readouterr().err == f"inference: falling back to TensorFlow: {why}\n"
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "openvino", "float32")
    assert str(err.value) == f"inference.runtime: openvino: {why}"


def _fake_openvino(monkeypatch, outputs) -> None:
    """OpenVINO installed, and a conversion whose forward pass gives ``outputs(batch)``."""
    monkeypatch.setattr("pipeline.runtimes.openvino.available", lambda: True)
    monkeypatch.setattr("pipeline.runtimes.openvino.forward",
                        lambda m, precision, note="": Forward(outputs, "openvino", precision))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_a_candidate_whose_outputs_are_not_finite_is_never_chosen(monkeypatch, capsys, bad):
    """A conversion that gives NaN (or inf) on one value of one row: auto falls back to
    TensorFlow naming it, an explicit openvino is refused."""
    model = backbone()
    reference = compile_forward(model, "tensorflow", "float32")

    def broken(batch):
        out = reference(batch).copy()
        out[-1, 0] = bad
        return out

    _fake_openvino(monkeypatch, broken)
    forward = compile_forward(model, "auto", "float32")
    assert forward.runtime == "tensorflow"
    assert "OpenVINO float32 disagrees with TensorFlow float32 (least cosine nan < 0.99999)" \
        in forward.note
    with pytest.raises(RuntimeChoiceError, match="least cosine nan"):
        compile_forward(model, "openvino", "float32")
    # The same conversion without the bad value passes the check and runs.
    _fake_openvino(monkeypatch, lambda batch: reference(batch))
    chosen = compile_forward(model, "auto", "float32")
    assert chosen.label() == "openvino float32"
    assert chosen.note == "least cosine to TensorFlow float32 1.000000 on 4 inputs"


def test_the_agreement_bar_is_each_precisions_own(monkeypatch):
    """bfloat16 may differ by a cosine of 1e-3 (3 digits), float32 by 1e-5, not more."""
    model = backbone()
    reference = compile_forward(model, "tensorflow", "float32")
    rng = np.random.default_rng(0)

    def off_by(cos: float):
        def run(batch):  # each row turned so that its cosine to the reference is ``cos``
            ref = reference(batch).astype(np.float64)
            noise = rng.standard_normal(ref.shape)
            noise -= (noise * ref).sum(1, keepdims=True) / (ref * ref).sum(1, keepdims=True) * ref
            noise *= np.linalg.norm(ref, axis=1, keepdims=True) / np.linalg.norm(
                noise, axis=1, keepdims=True)
            return (cos * ref + np.sqrt(1 - cos**2) * noise).astype(np.float32)
        return run

    _fake_openvino(monkeypatch, off_by(0.9995))
    assert compile_forward(model, "openvino", "bfloat16").label() == "openvino bfloat16"
    with pytest.raises(RuntimeChoiceError, match="< 0.99999"):
        compile_forward(model, "openvino", "float32")
    _fake_openvino(monkeypatch, off_by(0.998))
    with pytest.raises(RuntimeChoiceError, match="< 0.999"):
        compile_forward(model, "openvino", "bfloat16")


def test_the_check_inputs_are_pixels_for_images_and_normal_for_features():
    images_in = select.check_inputs((None, 8, 8, 3))
    assert images_in.shape == (select.CHECK_ROWS, 8, 8, 3) and images_in.dtype == np.float32
    assert images_in.min() >= 0 and images_in.max() <= 255 and images_in.max() > 200
    features_in = select.check_inputs((None, 64))
    assert features_in.shape == (select.CHECK_ROWS, 64) and features_in.min() < 0
    assert features_in.dtype == np.float32  # what the models take, on every runtime
    assert np.array_equal(select.check_inputs((None, 64)), features_in)  # seeded
    with pytest.raises(RuntimeChoiceError, match=r"input shape \(None, None, None, 3\): the "
                                                 "check needs a fixed input size"):
        select.check_inputs((None, None, None, 3))
    # Features of variable length (a sequence model): the same message, not a TypeError.
    with pytest.raises(RuntimeChoiceError, match=r"input shape \(None, None\): the check"):
        select.check_inputs((None, None))


def test_min_cosine_is_the_least_row_and_one_for_zero_rows():
    a = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    b = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, -1.0]])
    assert min_cosine(a, b) == 0.0  # the third row is orthogonal
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # zero rows: no stray RuntimeWarning in a stage's log
        assert min_cosine(a[:2], b[:2]) == 1.0
        assert min_cosine(a[1:2], b[1:2]) == 1.0  # all-zero outputs agree, no more than that
    assert math.isnan(min_cosine(a, np.array([[1.0, 0.0], [0.0, 0.0], [np.inf, 1.0]])))


def test_min_cosine_compares_probabilities_by_direction_whatever_their_size():
    """Softmax outputs have norms under 1: a runtime that moves a classifier's
    probabilities to another class must fail the check, not pass as an agreement."""
    keras_probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], dtype=np.float32)
    other = np.array([[0.1, 0.2, 0.7], [0.1, 0.1, 0.8]], dtype=np.float32)
    assert min_cosine(other, keras_probs) == pytest.approx(1 / 3)
    assert min_cosine(other, keras_probs) < select.MIN_COSINE["bfloat16"]
    assert min_cosine(keras_probs, keras_probs) == pytest.approx(1.0)


def test_explicit_choices_that_cannot_run_name_the_setting(monkeypatch):
    model = backbone()
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "tensorflow", "bfloat16")
    assert str(err.value) == (
        "inference.precision: bfloat16 runs on OpenVINO (inference.runtime: openvino or "
        "auto); on TensorFlow use distribute.mixed_precision: mixed_bfloat16")
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "onnxruntime", "float32")
    assert str(err.value) == ("inference.runtime: 'onnxruntime' is not one of "
                              "('auto', 'tensorflow', 'openvino')")
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "tensorflow", "float16")
    assert str(err.value) == ("inference.precision: 'float16' is not one of "
                              "('auto', 'float32', 'bfloat16')")
    monkeypatch.setattr("pipeline.runtimes.openvino.available", lambda: False)
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "openvino", "auto")
    assert str(err.value) == ("inference.runtime: openvino: OpenVINO is not installed "
                              "(pip install openvino)")
    assert compile_forward(model, "auto", "auto").runtime == "tensorflow"



@pytest.fixture
def fake_runtime(monkeypatch):
    """A runtime registered for one test, as docs/runtimes.md registers one: a module with
    available() and forward() (here TensorFlow's pass under another name), one entry."""
    monkeypatch.setattr(registry, "RUNTIMES", dict(registry.RUNTIMES))
    module = types.ModuleType("fake_runtime")
    module.installed = True
    module.available = lambda: module.installed
    module.forward = lambda model, precision, note="": Forward(
        compile_forward(model, "tensorflow").run, "fake", precision, note)
    monkeypatch.setitem(sys.modules, "fake_runtime", module)
    registry.register(Runtime("fake", "Fake", "fake_runtime", ("float32",),
                              "pip install fake-runtime"))
    return module


def test_a_registered_runtime_is_selectable_by_name_and_an_unknown_one_is_refused(
        fake_runtime, monkeypatch, capsys):
    model = backbone()
    chosen = compile_forward(model, "fake", "auto")
    assert chosen.label() == "fake float32"
    assert chosen.note == "least cosine to TensorFlow float32 1.000000 on 4 inputs"
    np.testing.assert_allclose(chosen(images()), model.predict(images(), verbose=0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "fakes", "float32")
    assert str(err.value) == ("inference.runtime: 'fakes' is not one of "
                              "('auto', 'tensorflow', 'openvino', 'fake')")
    # What it does not run, or cannot here, is refused naming it, as OpenVINO's would be.
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "fake", "bfloat16")
    assert str(err.value) == ("inference.precision: bfloat16 runs on OpenVINO "
                              "(inference.runtime: openvino or auto)")
    fake_runtime.installed = False
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "fake", "float32")
    assert str(err.value) == ("inference.runtime: fake: Fake is not installed "
                              "(pip install fake-runtime)")
    # auto tries the registered runtimes in order, and names each one's reason.
    monkeypatch.setattr("pipeline.runtimes.openvino.available", lambda: False)
    fallback = compile_forward(model, "auto", "float32")
    assert fallback.runtime == "tensorflow"
    assert fallback.note == ("fell back: openvino: OpenVINO is not installed (pip install "
                             "openvino); fake: Fake is not installed (pip install fake-runtime)")
    assert capsys.readouterr().err == f"inference: falling back to TensorFlow: " \
                                      f"{fallback.note.removeprefix('fell back: ')}\n"
    fake_runtime.installed = True
    assert compile_forward(model, "auto", "float32").label() == "fake float32"
    assert "fake: Fake does not run bfloat16" in compile_forward(model, "auto", "bfloat16").note
    # With no other runtime that runs it, the refusal says so; with TensorFlow alone, auto
    # runs it with nothing to fall back from.
    del registry.RUNTIMES["openvino"]
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(model, "fake", "bfloat16")
    assert str(err.value) == "inference.precision: bfloat16 runs on no registered runtime"
    del registry.RUNTIMES["fake"]
    capsys.readouterr()
    alone = compile_forward(model, "auto", "auto")
    assert alone.label() == "tensorflow float32" and alone.note == ""
    assert capsys.readouterr().err == ""


def test_a_refused_precision_names_every_runtime_that_runs_it(monkeypatch):
    """TensorFlow asked for bfloat16: the one-line refusal lists each registered runtime
    that runs it, by label and by the name to put in params.yaml, in registry order."""
    monkeypatch.setattr(registry, "RUNTIMES", dict(registry.RUNTIMES))
    registry.register(Runtime("halfway", "Halfway", "no_such_runtime_module", ("bfloat16",),
                              ""))
    with pytest.raises(RuntimeChoiceError) as err:
        compile_forward(None, "tensorflow", "bfloat16")
    assert str(err.value) == (
        "inference.precision: bfloat16 runs on OpenVINO or Halfway (inference.runtime: "
        "openvino or halfway or auto); on TensorFlow use distribute.mixed_precision: "
        "mixed_bfloat16")


def test_a_runtime_is_imported_only_when_selection_tries_it(monkeypatch):
    """Registering (and listing) a runtime imports nothing: a module that cannot be
    imported at all stays unnoticed until it is chosen."""
    monkeypatch.setattr(registry, "RUNTIMES", dict(registry.RUNTIMES))
    registry.register(Runtime("ghost", "Ghost", "no_such_runtime_module", ("float32",), ""))
    assert registry.names() == ("auto", "tensorflow", "openvino", "ghost")
    model = backbone()
    assert compile_forward(model, "tensorflow").runtime == "tensorflow"
    with pytest.raises(RuntimeChoiceError, match="inference.runtime: ghost: No module named "
                                                 "'no_such_runtime_module'"):
        compile_forward(model, "ghost", "float32")
    with pytest.raises(ValueError, match="inference runtime 'ghost' is already registered"):
        registry.register(Runtime("ghost", "Ghost", "elsewhere", ("float32",), ""))
    with pytest.raises(ValueError, match="'auto' is already registered"):
        registry.register(Runtime("auto", "Auto", "elsewhere", ("float32",), ""))


def test_params_yaml_accepts_exactly_the_registered_runtimes():
    """params.yaml is checked in core, which cannot import the registry: its list of names
    is a copy, kept here. A runtime added to one and not the other fails this test."""
    assert registry.names() == INFERENCE_RUNTIMES, (
        "pipeline/core/params.py INFERENCE_RUNTIMES and pipeline/runtimes/registry.py differ: "
        "add the runtime's name to both (docs/runtimes.md)")


def test_the_docs_list_the_registered_runtimes():
    """docs/runtimes.md's table has one row per registered runtime, in the registry's
    order (the order auto tries them in)."""
    text = (ROOT / "docs" / "runtimes.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| (\w[^|]*?) \| `([\w.]+)` \|", text, re.MULTILINE)
    assert rows == [(r.name, r.label, r.module) for r in registry.RUNTIMES.values()]


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert select.cpu_flags(info) == {"fpu", "sse", "avx512f", "avx512_bf16"}
    assert select.native_bf16(select.cpu_flags(info))
    assert not select.native_bf16({"avx512f"})
    assert select.cpu_flags(tmp_path / "missing") == set()


def trained_head(tmp_path, temperature: float = 1.0):
    rng = np.random.default_rng(0)
    train = rng.gamma(2.0, 1.5, (64, 12)).astype(np.float32)  # ReLU-pooled, not centred
    train[:, 3] = 0.25  # a constant feature: variance 0, Normalization's epsilon floor
    head = build_head(train, 4, dropout=0.3, l2=1e-4)
    head.compile("adam", "sparse_categorical_crossentropy")
    head.fit(train, rng.integers(0, 4, 64), epochs=3, verbose=0)
    model = with_temperature(head, temperature)
    path = tmp_path / "head.keras"
    model.save(path)
    test = rng.gamma(2.0, 1.5, (20, 12)).astype(np.float32)
    return path, model, test


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_numpy_head_equals_keras(tmp_path, temperature):
    path, model, test = trained_head(tmp_path, temperature)
    ours = head_probabilities(path, test)
    np.testing.assert_allclose(ours, model.predict(test, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.sum(1), 1.0, rtol=1e-5)


def test_numpy_head_refuses_what_it_does_not_reproduce(tmp_path):
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="gelu")(inputs))
    model.save(tmp_path / "gelu.keras")
    with pytest.raises(UnsupportedHead, match="activation 'gelu'"):
        head_probabilities(tmp_path / "gelu.keras", np.zeros((2, 6), np.float32))
    (tmp_path / "junk.keras").write_bytes(b"not a zip")
    with pytest.raises(UnsupportedHead, match="junk.keras: not a readable .keras file"):
        head_probabilities(tmp_path / "junk.keras", np.zeros((2, 6), np.float32))


def test_numpy_head_does_not_start_tensorflow(tmp_path):
    path, model, test = trained_head(tmp_path)
    np.save(tmp_path / "x.npy", test)
    code = ("import sys, numpy as np\n"
            "from pipeline.runtimes.numpy_head import head_probabilities\n"
            f"p = head_probabilities({str(path)!r}, np.load({str(tmp_path / 'x.npy')!r}))\n"
            "print(p.shape, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "(20, 4) False False"


def test_evaluate_head_runs_without_tensorflow_sklearn_scipy_or_matplotlib(tmp_path):
    """stages/evaluate.py head, run as DVC runs it on a project the test makes: every output
    written, and neither TensorFlow, scikit-learn, SciPy nor matplotlib imported (each
    start-up would be a large part of the head loop's evaluation: issue 32)."""
    import json

    from helpers import STAGES, head_project

    head_project(tmp_path, ["a", "b", "c"], {"val": 30, "test": 40}, str(tmp_path / "images"))
    stage = str(STAGES / "evaluate.py")
    code = ("import atexit, runpy, sys\n"
            "atexit.register(lambda: print('loaded', *(m in sys.modules for m in "
            "('tensorflow', 'keras', 'sklearn', 'scipy', 'matplotlib'))))\n"
            f"sys.argv = [{stage!r}, 'head']\n"
            f"runpy.run_path({stage!r}, run_name='__main__')\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "loaded False False False False False" in run.stdout
    metrics = json.loads((tmp_path / "metrics" / "evaluate" / "head.json").read_text())
    facts = json.loads((tmp_path / "reports" / "runs" / "evaluate" / "head.json").read_text())
    assert facts["runtime"] == "numpy float32" and 0 < metrics["accuracy"] <= 1
    for name in ("mistakes.png", "confused_pairs.png", "reliability.png", "confusion.csv",
                 "per_class.csv", "reliability.csv"):
        assert (tmp_path / "plots" / "head" / name).stat().st_size > 0, name
