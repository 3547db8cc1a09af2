"""pipeline.models.wide_resnet: architecture, parameter counts, dropout, training, saving."""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import pytest
from helpers import normal_images

from pipeline.models.wide_resnet import (
    STEM_FILTERS,
    WideResNet,
    blocks_per_group,
    group_widths,
)

# Trainable counts of the reference PyTorch port (xternalz/WideResNet-pytorch), 10 classes,
# which counts BN gamma/beta but not the running statistics, as Keras' trainable count does.
PYTORCH_TRAINABLE = {(28, 10): 36_479_194, (16, 4): 2_748_890}
# Paper's Table (Zagoruyko and Komodakis 2016), millions, rounded to 0.1 M.
PAPER_MILLIONS = {(40, 4): 8.9, (16, 8): 11.0, (28, 10): 36.5, (16, 4): 2.7}


class WRNParams(NamedTuple):
    """Parameter count of a WRN as Keras reports it."""

    trainable: int  # conv kernels, BN gamma/beta, dense kernel/bias
    non_trainable: int  # BN moving mean/variance

    @property
    def total(self) -> int:
        return self.trainable + self.non_trainable


def wrn_param_count(depth: int, width: int, classes: int | None = 10) -> WRNParams:
    """Count WRN-depth-width parameters from the architecture, without building it.

    `classes=None` (or 0) counts the headless network. The counts are what
    `model.count_params()` splits into trainable and non-trainable weights.
    """
    n = blocks_per_group(depth)
    convs = 3 * 3 * 3 * STEM_FILTERS  # stem, RGB input
    bn_channels = 0  # every BN contributes 2 trainable + 2 non-trainable per channel
    c_in = STEM_FILTERS
    for c_out in group_widths(width):
        for block in range(n):
            cin = c_in if block == 0 else c_out
            bn_channels += cin + c_out
            convs += 9 * cin * c_out + 9 * c_out * c_out
            if block == 0 and cin != c_out:
                convs += cin * c_out  # 1x1 projection
        c_in = c_out
    bn_channels += c_in  # final BN
    dense = (c_in * classes + classes) if classes else 0
    return WRNParams(trainable=convs + 2 * bn_channels + dense, non_trainable=2 * bn_channels)


@pytest.mark.parametrize("depth", [0, 12, 15, 17, 27, 29])
def test_bad_depth_names_depth_and_allowed_values(depth: int) -> None:
    with pytest.raises(ValueError) as info:
        WideResNet(depth=depth)
    assert f"depth={depth}" in str(info.value)
    assert "6N+4" in str(info.value) and "16, 22, 28" in str(info.value)


def test_blocks_per_group() -> None:
    assert [blocks_per_group(d) for d in (10, 16, 28, 40)] == [1, 2, 4, 6]


@pytest.mark.parametrize(
    ("depth", "width", "classes", "include_top"),
    [
        (16, 4, 10, True),
        (10, 2, 100, True),
        (10, 1, 10, False),
        (22, 2, 7, True),
        (28, 10, 10, True),
    ],
)
def test_built_model_matches_formula(depth: int, width: int, classes: int, include_top: bool):
    model = WideResNet(
        depth, width, include_top=include_top, classes=classes, input_shape=(32, 32, 3)
    )
    expected = wrn_param_count(depth, width, classes if include_top else None)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == expected.trainable
    assert model.count_params() == expected.total
    assert model.count_params() - trainable == expected.non_trainable


def test_trainable_count_matches_pytorch_reference_exactly() -> None:
    # Same architecture, same count: any mismatch means a wrong block, not rounding.
    for (depth, width), count in PYTORCH_TRAINABLE.items():
        assert wrn_param_count(depth, width, 10).trainable == count


@pytest.mark.parametrize(("depth", "width"), list(PAPER_MILLIONS))
def test_count_close_to_paper(depth: int, width: int) -> None:
    # The paper's figures are trainable weights rounded to 0.1 M, so the trainable count
    # must round to them exactly. Keras' total also counts the BN moving mean/variance
    # (non-trainable, 3.6k to 18k here), so it may sit up to 0.1 M from the paper figure.
    counts = wrn_param_count(depth, width, 10)
    assert round(counts.trainable / 1e6, 1) == PAPER_MILLIONS[depth, width]
    assert abs(counts.total / 1e6 - PAPER_MILLIONS[depth, width]) < 0.1
    assert counts.non_trainable < 20_000


def test_output_shapes() -> None:
    x = normal_images(2)
    top = WideResNet(10, 1, include_top=True, classes=7, input_shape=(32, 32, 3))
    assert top(x).shape == (2, 7)
    np.testing.assert_allclose(np.sum(top(x), axis=-1), 1.0, rtol=1e-5)
    assert WideResNet(10, 1, pooling="avg")(x).shape == (2, 64)
    assert WideResNet(10, 1, pooling="max")(x).shape == (2, 64)
    assert WideResNet(10, 2, pooling=None)(x).shape == (2, 8, 8, 128)  # two stride-2 groups
    assert WideResNet(10, 1, pooling="avg")(normal_images(1, size=48)).shape == (1, 64)
    tensor = keras.Input(shape=(16, 16, 3))
    assert WideResNet(10, 1, input_tensor=tensor).output.shape == (None, 64)


def test_layer_names_and_no_conv_bias() -> None:
    model = WideResNet(16, 2, include_top=True)
    names = {layer.name for layer in model.layers}
    assert {"stem_conv", "group1_block1_shortcut_conv", "group3_block2_conv2", "post_bn"} <= names
    assert "group1_block2_shortcut_conv" not in names  # identity shortcut inside a group
    shortcut = model.get_layer("group2_block1_shortcut_conv")
    assert shortcut.input._keras_history.operation.name == "group2_block1_relu1"  # pre-activated
    assert shortcut.strides == model.get_layer("group2_block1_conv1").strides == (2, 2)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert convs and all(not c.use_bias for c in convs)
    assert model.name == "wrn_16_2"


def test_dropout_only_in_training() -> None:
    keras.utils.set_random_seed(1)
    model = WideResNet(10, 1, dropout=0.3, include_top=True, input_shape=(32, 32, 3))
    x = normal_images(4)
    a, b = (np.asarray(model(x, training=True)) for _ in range(2))
    assert not np.allclose(a, b)
    c, d = (np.asarray(model(x, training=False)) for _ in range(2))
    np.testing.assert_array_equal(c, d)
    no_drop = WideResNet(10, 1, dropout=0.0)
    assert not any(isinstance(layer, keras.layers.Dropout) for layer in no_drop.layers)


def test_one_training_step_changes_weights_and_loss_is_finite() -> None:
    keras.utils.set_random_seed(2)
    model = WideResNet(10, 1, include_top=True, classes=10, input_shape=(32, 32, 3))
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        loss="sparse_categorical_crossentropy",
    )
    before = {w.path: w.numpy().copy() for w in model.trainable_weights}
    history = model.fit(normal_images(8), np.arange(8) % 10, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    unchanged = [
        w.path for w in model.trainable_weights if np.array_equal(before[w.path], w.numpy())
    ]
    assert unchanged == []


def test_keras_save_reload_safe_mode(tmp_path) -> None:
    keras.utils.set_random_seed(3)
    model = WideResNet(10, 1, include_top=True, classes=5, input_shape=(32, 32, 3))
    x = normal_images(2)
    path = tmp_path / "wrn.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model.predict(x, verbose=0), loaded.predict(x, verbose=0))


def test_weights_argument_loads_weights_h5(tmp_path) -> None:
    keras.utils.set_random_seed(4)
    model = WideResNet(10, 1, include_top=True, classes=3)
    path = tmp_path / "wrn.weights.h5"
    model.save_weights(path)
    again = WideResNet(10, 1, include_top=True, classes=3, weights=str(path))
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="weights.h5"):
        WideResNet(10, 1, weights="imagenet")
