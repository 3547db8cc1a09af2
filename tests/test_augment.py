"""Batch augmentation: each part does its job only when on, stays in range, and is seeded;
the training input is a function of (seed, epoch), so a resumed run sees the same batches."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from helpers import augment_params, resnet_recipe
from PIL import Image

from pipeline.core.params import AugmentParams
from pipeline.data.epochs import Epochs
from pipeline.data.input import image_dataset, load_image
from pipeline.training.augment import make_augment
from pipeline.training.inputs import Splits, datasets

CLASSES = 4
OFF = {"flip": False, "crop": False, "color_jitter": 0.0, "mixup_alpha": 0.0}


def only(**on) -> AugmentParams:
    return augment_params(**(OFF | on))


def batch(n: int = 16, size: int = 24, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    """Images with left-right structure (so a flip shows) and one-hot labels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, size, dtype="float32")[None, None, :, None]
    x = ramp + rng.uniform(0, 55, (n, size, size, 3)).astype("float32")
    y = tf.one_hot(rng.integers(0, CLASSES, n), CLASSES)
    return tf.constant(x), y


def seed_of(seed: int) -> tf.Tensor:
    return tf.constant([seed, 0], tf.int64)


def run(cfg: AugmentParams, seed: int = 0, data=None):
    x, y = data or batch()
    out_x, out_y = make_augment(cfg, CLASSES)(x, y, seed_of(seed))
    return x.numpy(), y.numpy(), out_x.numpy(), out_y.numpy()


def test_everything_off_gives_no_augment():
    assert make_augment(augment_params(**OFF), CLASSES) is None


def test_flip_mirrors_some_images_and_nothing_else():
    x, y, out, labels = run(only(flip=True))
    mirrored = [np.array_equal(o, i[:, ::-1]) for o, i in zip(out, x, strict=True)]
    same = [np.array_equal(o, i) for o, i in zip(out, x, strict=True)]
    assert all(m or s for m, s in zip(mirrored, same, strict=True))  # no crop, no jitter
    assert 0 < sum(mirrored) < len(x)
    np.testing.assert_array_equal(labels, y)


def test_crop_resizes_back_and_changes_images():
    x, y, out, labels = run(only(crop=True, crop_min_scale=0.5))
    assert out.shape == x.shape and out.dtype == np.float32
    assert all(not np.allclose(o, i) for o, i in zip(out, x, strict=True))
    assert out.min() >= 0 and out.max() <= 255
    np.testing.assert_array_equal(labels, y)


def test_color_jitter_changes_brightness_and_stays_in_range():
    x, y, out, _ = run(only(color_jitter=0.4))
    assert out.min() >= 0 and out.max() <= 255
    assert (np.abs(out.mean(axis=(1, 2, 3)) - x.mean(axis=(1, 2, 3))) > 0.1).all()
    # The geometry is untouched: a pixel's rank within its image barely moves.
    corr = [np.corrcoef(o.ravel(), i.ravel())[0, 1] for o, i in zip(out, x, strict=True)]
    assert min(corr) > 0.9


def test_mixup_mixes_images_and_labels_with_rows_summing_to_one():
    x, y, out, labels = run(only(mixup_alpha=0.4))
    np.testing.assert_allclose(labels.sum(axis=1), 1, rtol=1e-6)
    assert (labels >= 0).all() and not np.array_equal(labels, y)
    assert out.min() >= x.min() - 1e-3 and out.max() <= x.max() + 1e-3
    assert not np.allclose(out, x)


def test_all_on_keeps_shapes_and_ranges_on_a_ragged_last_batch():
    x, y = batch(n=5)
    cfg = augment_params(flip=True, crop=True, crop_min_scale=0.3, color_jitter=0.3,
                         mixup_alpha=0.2)
    out_x, out_y = make_augment(cfg, CLASSES)(x, y, seed_of(7))
    assert out_x.shape == x.shape and out_y.shape == y.shape
    assert float(tf.reduce_min(out_x)) >= 0 and float(tf.reduce_max(out_x)) <= 255


def test_same_seed_same_augmentation_other_seed_other():
    cfg = augment_params(flip=True, crop=True, crop_min_scale=0.6, color_jitter=0.2,
                         mixup_alpha=0.2)
    augment = make_augment(cfg, CLASSES)
    first, second = batch(seed=1), batch(seed=2)
    for data in (first, second):  # a function of the batch's seed alone: no hidden state
        np.testing.assert_array_equal(augment(*data, seed_of(3))[0],
                                      make_augment(cfg, CLASSES)(*data, seed_of(3))[0])
    assert not np.allclose(augment(*first, seed_of(3))[0], augment(*first, seed_of(4))[0])


@pytest.fixture
def pngs(tmp_path) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    files = []
    for i in range(10):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(path)
        files.append(str(path))
    return np.array(files), np.arange(10, dtype=np.int32) % CLASSES


def collect(ds: tf.data.Dataset) -> list[np.ndarray]:
    return [np.concatenate([x.numpy().ravel(), np.asarray(y).ravel()]) for x, y in ds]


def test_evaluation_dataset_is_the_same_on_every_pass(pngs):
    ds = image_dataset(*pngs, 16, 4)  # no augment, no shuffle: what evaluation uses
    first, second = collect(ds), collect(ds)
    assert len(first) == 3
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_training_batches_are_reproducible_from_the_seed(pngs):
    splits = Splits(train=pngs, val=pngs, classes=[str(i) for i in range(CLASSES)])
    cfg = resnet_recipe(batch_size=4, augment=augment_params(
        flip=True, crop=True, crop_min_scale=0.6, color_jitter=0.1, mixup_alpha=0.2))
    runs = [collect(datasets(splits, cfg, 16, 5, cfg.batch_size)[0].dataset(0, 2))
            for _ in range(2)]
    other = collect(datasets(splits, cfg, 16, 6, cfg.batch_size)[0].dataset(0, 2))
    val = [collect(datasets(splits, cfg, 16, s, cfg.batch_size)[1]) for s in (5, 6)]
    assert len(runs[0]) == 6  # 2 epochs of ceil(10 / 4) batches
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0], other, strict=True))
    for a, b in zip(*val, strict=True):  # validation batches: never augmented or shuffled
        np.testing.assert_array_equal(a, b)


def test_an_epoch_is_the_same_whether_a_run_starts_there_or_reaches_it(pngs):
    """What a run resumed at epoch 2 trains on is what an uninterrupted run trains on from
    its epoch 2 on; every epoch is a new order of all the images; streams differ."""
    cfg = augment_params(flip=True, crop=True, crop_min_scale=0.6, color_jitter=0.1,
                         mixup_alpha=0.0)
    augment = make_augment(cfg, CLASSES)

    def onehot_augment(images, labels, seed):
        return augment(images, tf.one_hot(labels, CLASSES), seed)

    stream = Epochs(*pngs, 4, seed=5, load=lambda p: load_image(p, 16), augment=onehot_augment)
    whole = collect(stream.dataset(0, 4))
    resumed = collect(stream.dataset(2, 4))
    assert stream.steps == 3 and len(whole) == 12 and len(resumed) == 6
    for a, b in zip(whole[6:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)

    orders = [np.concatenate([y.numpy() for _, y in Epochs(
        pngs[0], np.arange(10), 4, seed=5, stream=s).dataset(e, e + 1)])
        for s, e in ((0, 0), (0, 1), (1, 0))]
    for order in orders:
        assert sorted(order) == list(range(10))  # each epoch: every image once
    assert len({tuple(o) for o in orders}) == 3  # another shuffle each epoch and stream
