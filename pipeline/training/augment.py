"""Training-time augmentation of image batches: flip, random resized crop, colour jitter, MixUp.

Everything works on a *batch* of float RGB images in [0, 255] with one-hot labels, the
form ``pipeline.data.epochs.Epochs(augment=...)`` maps: one call per batch is cheaper than
one per image, and MixUp needs a batch to mix. Only training augments; the evaluation
datasets are built without it.

Randomness is stateless: each batch comes with its own seed (``pipeline.data.epochs.Epochs``
derives it from the run's seed, the epoch and the batch's index), and every draw folds its
own index into it (:class:`Draws`). A batch's augmentation is thus a function of its seed
alone: a run resumed after a kill augments its remaining epochs as an uninterrupted run
would, and tf.data may prepare batches in parallel even under op determinism.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

from pipeline.core.params import AugmentParams

Batch = tuple[tf.Tensor, tf.Tensor]
Augment = Callable[[tf.Tensor, tf.Tensor, tf.Tensor], Batch]  # (images, labels, seed)

# Aspect ratios (width / height) of the random crop: log-uniform in [3/4, 4/3], as
# Inception-style crops do, so that shapes are distorted a little and never much.
CROP_LOG_RATIO = math.log(4 / 3)
PIXEL_MAX = 255.0


class Draws:
    """Random numbers from one stateless seed (a shape-[2] integer tensor): each draw folds
    its own index into the seed, so the same seed gives the same numbers in any process."""

    def __init__(self, seed: tf.Tensor):
        self.seed = seed
        self.count = 0  # counted while tracing: the graph fixes each draw's index

    def next_seed(self) -> tf.Tensor:
        self.count += 1
        return tf.random.experimental.stateless_fold_in(self.seed, self.count)

    def uniform(self, shape: tf.Tensor | tuple, minval: float = 0.0, maxval: float = 1.0
                ) -> tf.Tensor:
        return tf.random.stateless_uniform(shape, self.next_seed(), minval, maxval)


def flip(images: tf.Tensor, gen: Draws) -> tf.Tensor:
    """Mirror each image left-right with probability 1/2."""
    n = tf.shape(images)[0]
    mirror = gen.uniform((n, 1, 1, 1)) < 0.5
    return tf.where(mirror, tf.reverse(images, axis=[2]), images)


def random_resized_crop(images: tf.Tensor, gen: Draws, min_scale: float
                        ) -> tf.Tensor:
    """Crop a random box of each image and resize it back to the input size.

    The box side is a fraction ``s`` in [min_scale, 1] of the image side, its aspect ratio
    log-uniform near 1; it lies wholly inside the image.
    """
    n = tf.shape(images)[0]
    size = tf.shape(images)[1:3]
    scale = gen.uniform((n,), min_scale, 1.0)
    ratio = tf.exp(gen.uniform((n,), -CROP_LOG_RATIO, CROP_LOG_RATIO))
    h = tf.minimum(scale / tf.sqrt(ratio), 1.0)
    w = tf.minimum(scale * tf.sqrt(ratio), 1.0)
    y0 = gen.uniform((n,)) * (1.0 - h)
    x0 = gen.uniform((n,)) * (1.0 - w)
    boxes = tf.stack([y0, x0, y0 + h, x0 + w], axis=1)
    return tf.image.crop_and_resize(images, boxes, tf.range(n), size)


def color_jitter(images: tf.Tensor, gen: Draws, strength: float) -> tf.Tensor:
    """Random brightness (+- strength of the range) and contrast (x 1 +- strength) per image."""
    n = tf.shape(images)[0]
    shift = gen.uniform((n, 1, 1, 1), -strength, strength) * PIXEL_MAX
    factor = gen.uniform((n, 1, 1, 1), 1.0 - strength, 1.0 + strength)
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)  # per channel, as tf.image does
    out = (images - mean) * factor + mean + shift
    return tf.clip_by_value(out, 0.0, PIXEL_MAX)


def sample_beta(gen: Draws, n: tf.Tensor, alpha: float) -> tf.Tensor:
    """Beta(alpha, alpha) samples as X / (X + Y) with X, Y ~ Gamma(alpha)."""
    x = tf.random.stateless_gamma((n,), gen.next_seed(), alpha=alpha)
    y = tf.random.stateless_gamma((n,), gen.next_seed(), alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def mixup(images: tf.Tensor, labels: tf.Tensor, gen: Draws, alpha: float
          ) -> Batch:
    """MixUp (Zhang et al. 2018): each example blended with a random partner of the batch.

    Weights are Beta(alpha, alpha) per example; the one-hot labels mix with the same
    weights, so every label row still sums to 1.
    """
    n = tf.shape(images)[0]
    partner = tf.argsort(gen.uniform((n,)))
    lam = sample_beta(gen, n, alpha)
    lam_images = tf.reshape(lam, (-1, 1, 1, 1))
    lam_labels = tf.reshape(lam, (-1, 1))
    mixed = lam_images * images + (1.0 - lam_images) * tf.gather(images, partner)
    labels = tf.cast(labels, images.dtype)
    mixed_labels = lam_labels * labels + (1.0 - lam_labels) * tf.gather(labels, partner)
    return mixed, mixed_labels


def make_augment(augment: AugmentParams, num_classes: int) -> Augment | None:
    """The batch augmentation ``augment`` asks for, or None when every part is off.

    The callable maps (images (n, h, w, 3) float in [0, 255], one-hot labels (n, classes),
    the batch's seed (shape [2], integer)) to images and labels of the same shapes and
    ranges. ``num_classes`` is checked against the labels, so a
    caller that forgot to one-hot encode fails at graph build, not with odd losses.
    """
    if not (augment.flip or augment.crop or augment.color_jitter > 0 or augment.mixup_alpha > 0):
        return None

    def apply(images: tf.Tensor, labels: tf.Tensor, seed: tf.Tensor) -> Batch:
        gen = Draws(seed)
        images = tf.cast(images, tf.float32)
        labels = tf.ensure_shape(tf.cast(labels, tf.float32), (None, num_classes))
        if augment.crop:
            images = random_resized_crop(images, gen, augment.crop_min_scale)
        if augment.flip:
            images = flip(images, gen)
        if augment.color_jitter > 0:
            images = color_jitter(images, gen, augment.color_jitter)
        if augment.mixup_alpha > 0:
            images, labels = mixup(images, labels, gen, augment.mixup_alpha)
        return images, labels

    return apply
