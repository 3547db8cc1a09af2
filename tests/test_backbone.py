"""The backbone carries the ImageNet preprocessing its weights expect."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from pipeline.models.backbone import ResNetPreprocess, build_backbone


def test_preprocess_layer_matches_keras_preprocess_input():
    x = np.random.default_rng(0).uniform(0, 255, (3, 8, 8, 3)).astype("float32")
    expected = keras.applications.resnet.preprocess_input(x.copy())
    np.testing.assert_allclose(ResNetPreprocess()(x), expected, rtol=1e-6, atol=1e-4)


def test_backbone_outputs_pooled_features_and_saves_safely(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_backbone("resnet50", 32)
    assert model.output_shape == (None, 2048)
    x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    model.save(tmp_path / "b.keras")
    again = keras.models.load_model(tmp_path / "b.keras", safe_mode=True)
    np.testing.assert_allclose(again(x), model(x), rtol=1e-5, atol=1e-5)


def test_an_extractor_traces_once_for_every_split_and_keeps_the_order():
    """The features stage runs one Extractor over train, val and test: one graph, reused
    for splits and last batches of any size, each split's rows in its own order."""
    import tensorflow as tf

    from pipeline.models.features import Extractor

    keras.utils.set_random_seed(0)
    backbone = build_backbone("resnet50", 32)
    rng = np.random.default_rng(0)
    splits = {n: rng.uniform(0, 255, (n, 32, 32, 3)).astype("float32") for n in (7, 5, 3)}
    extractor = Extractor(backbone)
    for n, images in splits.items():
        ds = tf.data.Dataset.from_tensor_slices((images, np.zeros(n, np.int32))).batch(4)
        features, rate = extractor(ds, n)
        assert features.shape == (n, 2048) and features.dtype == np.float32 and rate > 0
        expected = backbone.predict(images, batch_size=4, verbose=0)
        np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-4)
    assert extractor._forward.experimental_get_tracing_count() == 1
    # Another image size would need another graph: said, not a TensorFlow signature error.
    other = tf.data.Dataset.from_tensor_slices((np.zeros((2, 40, 40, 3), "float32"),
                                                np.zeros(2, np.int32))).batch(2)
    with pytest.raises(ValueError, match="one Extractor serves one image size"):
        extractor(other, 2)
