"""Grad-CAM finds the activation inside nested models and points at the evidence."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.evaluation.saliency import NoSaliency, grad_cam, last_conv_path, overlay, tapped

SIZE, SQUARE = 32, 8


def squares(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, square corners): class 1 has a bright square in a random corner,
    class 0 only the dim noise background."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 80, (n, SIZE, SIZE, 3)).astype("float32")
    y = np.arange(n) % 2
    corners = rng.integers(0, 2, (n, 2)) * (SIZE - SQUARE)
    for i in np.flatnonzero(y):
        r, c = corners[i]
        x[i, r:r + SQUARE, c:c + SQUARE] = 255.0
    return x, y.astype("int32"), corners


def nested_conv_model() -> keras.Model:
    """Image -> rescale -> [conv, conv, pool] (a nested functional model) -> softmax."""
    image = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="last_conv")(x)
    trunk = keras.Model(image, keras.layers.GlobalAveragePooling2D()(x), name="trunk")
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    features = trunk(keras.layers.Rescaling(1 / 255)(inputs), training=False)
    return keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(features))


@pytest.fixture(scope="module")
def trained():
    keras.utils.set_random_seed(0)
    model = nested_conv_model()
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    x, y, _ = squares(256, 0)
    model.fit(x, y, epochs=6, batch_size=32, verbose=0)
    return model


def test_the_last_conv_activation_is_found_through_nesting(trained):
    assert last_conv_path(trained) == ["trunk", "last_conv"]
    x, _, _ = squares(4, 1)
    activation, proba = tapped(trained)(x)
    assert activation.shape == (4, SIZE, SIZE, 8)
    np.testing.assert_allclose(proba, trained.predict(x, verbose=0), atol=1e-5)


def test_the_map_is_brightest_on_the_square(trained):
    x, y, corners = squares(40, 2)
    assert (trained.predict(x, verbose=0).argmax(1) == y).mean() > 0.9  # it learnt the task
    ones = np.flatnonzero(y)
    maps = grad_cam(tapped(trained), x[ones], classes=np.ones(len(ones), dtype=int))
    assert maps.shape == (len(ones), SIZE, SIZE) and maps.max() <= 1.0
    for cam, (r, c) in zip(maps, corners[ones], strict=True):
        peak = np.unravel_index(cam.argmax(), cam.shape)
        # The peak lies on the square (a 2 px margin for the 3x3 convs' reach) ...
        assert r - 2 <= peak[0] < r + SQUARE + 2 and c - 2 <= peak[1] < c + SQUARE + 2
        # ... and the square's quadrant outweighs the opposite one.
        square = cam[r:r + SQUARE, c:c + SQUARE].mean()
        far = cam[SIZE - SQUARE - r:SIZE - r, SIZE - SQUARE - c:SIZE - c].mean()
        assert square > 2 * far


def test_a_model_without_convolutions_says_so():
    inputs = keras.Input((16,))
    dense = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    with pytest.raises(NoSaliency, match="no convolutional"):
        last_conv_path(dense)


def test_overlay_blends_the_colour_map_over_the_image():
    image = np.full((4, 4, 3), 100.0)
    cam = np.zeros((4, 4))
    cam[0, 0] = 1.0
    out = overlay(image, cam, alpha=0.5)
    assert out.shape == (4, 4, 3)
    # jet: 0 is dark blue, 1 dark red.
    assert out[0, 0, 0] > out[0, 0, 2] and out[3, 3, 2] > out[3, 3, 0]


def test_a_flip_averaged_model_is_mapped_on_the_image_as_it_is(trained, tmp_path):
    """Test-time flip averaging calls the network twice (the image and its mirror): Grad-CAM
    maps the network on the image as it is, not "no saliency map"."""
    from PIL import Image

    from pipeline.evaluation.saliency import saliency_overlays
    from pipeline.models.flip import flip_averaged

    x, _, _ = squares(2, 3)
    files = {}
    for i, image in enumerate(x):
        files[f"{i}.png"] = str(tmp_path / f"{i}.png")
        Image.fromarray(image.astype("uint8")).save(files[f"{i}.png"])
    shown, note = saliency_overlays(flip_averaged(trained), files, SIZE)
    assert set(shown) == set(files) and note.endswith("at last_conv"), note
