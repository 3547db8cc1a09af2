"""pipeline.models.resnet9: Page's layout and parameter count, and it trains (the family's
recipe as params.yaml has it: build, a training step, save and load)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from helpers import resnet9_recipe

from pipeline.models.classifier import build_scratch_model, inference_copy
from pipeline.models.resnet9 import ResNet9
from pipeline.models.saving import load_model
from pipeline.training.recipe import compile_model
from pipeline.training.schedules import make_schedule


def page_count(width: int, classes: int) -> int:
    """Trainable parameters of Page's ResNet-9 at base width ``w``, counted from the paper's
    layout: convs 3->w, w->2w, two 2w->2w, 2w->4w, 4w->8w, two 8w->8w (3x3, no bias), a
    BatchNorm (gamma, beta) after each, and a Dense top with bias."""
    w = width
    convs = [(3, w), (w, 2 * w), (2 * w, 2 * w), (2 * w, 2 * w), (2 * w, 4 * w),
             (4 * w, 8 * w), (8 * w, 8 * w), (8 * w, 8 * w)]
    return sum(9 * i * o + 2 * o for i, o in convs) + 8 * w * classes + classes


@pytest.mark.parametrize(("width", "classes"), [(64, 10), (16, 5), (4, 3)])
def test_parameter_count_follows_the_layout(width, classes):
    model = ResNet9(width, include_top=True, classes=classes, input_shape=(32, 32, 3))
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == page_count(width, classes)
    if width == 64:  # Page's network: 6.57 M parameters
        assert trainable == 6_573_130


def test_the_map_is_pooled_three_times_then_globally():
    features = ResNet9(8, input_shape=(64, 64, 3), pooling=None)
    assert features.output_shape == (None, 8, 8, 64)
    assert ResNet9(8, input_shape=(64, 64, 3)).output_shape == (None, 64)
    assert ResNet9(8, stem_stride=2, input_shape=(64, 64, 3),
                   pooling=None).output_shape == (None, 4, 4, 64)


@pytest.mark.parametrize(("kwargs", "named"), [({"width": 0}, "width=0"),
                                               ({"stem_stride": 3}, "stem_stride"),
                                               ({"pooling": "sum"}, "pooling")])
def test_bad_arguments_name_the_argument(kwargs, named):
    with pytest.raises(ValueError, match=named):
        ResNet9(**kwargs)


def test_the_recipe_builds_trains_a_step_and_round_trips(tmp_path):
    """params.yaml's scratch.resnet9 at 32 px: raw pixels in, probabilities out; one step
    of its optimizer and one-cycle schedule moves the weights; the saved model (flip
    averaged) loads in safe mode and predicts what the trained one does."""
    recipe = resnet9_recipe(image_size=32, width=4)
    keras.utils.set_random_seed(0)
    model = build_scratch_model(recipe, 3, name="resnet9")
    assert model.input_shape == (None, 32, 32, 3) and model.output_shape == (None, 3)
    compile_model(model, recipe, make_schedule(recipe, 4))
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 32, 32, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 8), 3)
    before = [w.copy() for w in model.get_weights()]
    for _ in range(2):  # the one-cycle rate is 0 at the first step
        loss = model.train_on_batch(x, y)
    assert np.all(np.isfinite(loss))  # the loss and the accuracy
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights(),
                                                        strict=True))
    saved = inference_copy(model, flip_tta=recipe.flip_tta)
    saved.save(tmp_path / "m.keras")
    again = load_model(tmp_path / "m.keras")
    expected = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(again.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-6)


@pytest.fixture
def bfloat16_policy():
    """Keras' global policy as a stage trains under ``precision: bfloat16``, reset after."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_a_model_trained_in_bfloat16_ships_in_float32(bfloat16_policy):
    """The saved model computes in float32 whatever the training's precision (the inference
    runtime picks its own), so that it converts: TFLite refuses a bfloat16 mirror op and
    ONNX Runtime a graph of bfloat16 casts."""
    from pipeline.export.tflite import to_tflite

    keras.utils.set_random_seed(0)
    model = build_scratch_model(resnet9_recipe(image_size=32, width=4), 3)
    assert model.get_layer("predictions").input.dtype == "bfloat16"  # trained in bfloat16
    saved = inference_copy(model, flip_tta=True)

    def policies(net):
        for layer in net.layers:
            if isinstance(layer, keras.Model):
                yield from policies(layer)
            elif not isinstance(layer, keras.layers.InputLayer):
                yield layer.dtype_policy.name

    assert set(policies(saved)) == {"float32"}
    x = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    trained = (model.predict(x, verbose=0) + model.predict(x[:, :, ::-1], verbose=0)) / 2
    np.testing.assert_allclose(saved.predict(x, verbose=0), trained, atol=0.02)  # bfloat16's
    assert len(to_tflite(saved, 32)) > 0
