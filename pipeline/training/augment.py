"""Training-time augmentation of image batches: flip, random resized crop, colour jitter, MixUp.

Everything works on a *batch* of float RGB images in [0, 255] with one-hot labels, the
form ``pipeline.data.input.image_dataset(augment=...)`` maps: one call per batch is cheaper than
one per image, and MixUp needs a batch to mix. Only training augments; the evaluation
datasets are built without ``augment``.

Randomness comes from one ``tf.random.Generator`` seeded from the run's seed, so a run is
reproducible. Its ops are stateful: under ``tf.config.experimental.enable_op_determinism``
(which ``pipeline.core.runtime.seed_everything`` turns on) tf.data then runs the input pipeline
serially, so the batches draw their numbers in a fixed order. That costs little here: the
pipeline decodes small images far faster than a CPU trains on them.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import tensorflow as tf

from pipeline.core.params import AugmentParams

Batch = tuple[tf.Tensor, tf.Tensor]
Augment = Callable[[tf.Tensor, tf.Tensor], Batch]

# Aspect ratios (width / height) of the random crop: log-uniform in [3/4, 4/3], as
# Inception-style crops do, so that shapes are distorted a little and never much.
CROP_LOG_RATIO = math.log(4 / 3)
PIXEL_MAX = 255.0


def flip(images: tf.Tensor, gen: tf.random.Generator) -> tf.Tensor:
    """Mirror each image left-right with probability 1/2."""
    n = tf.shape(images)[0]
    mirror = gen.uniform((n, 1, 1, 1)) < 0.5
    return tf.where(mirror, tf.reverse(images, axis=[2]), images)


def random_resized_crop(images: tf.Tensor, gen: tf.random.Generator, min_scale: float
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


def color_jitter(images: tf.Tensor, gen: tf.random.Generator, strength: float) -> tf.Tensor:
    """Random brightness (+- strength of the range) and contrast (x 1 +- strength) per image."""
    n = tf.shape(images)[0]
    shift = gen.uniform((n, 1, 1, 1), -strength, strength) * PIXEL_MAX
    factor = gen.uniform((n, 1, 1, 1), 1.0 - strength, 1.0 + strength)
    mean = tf.reduce_mean(images, axis=[1, 2], keepdims=True)  # per channel, as tf.image does
    out = (images - mean) * factor + mean + shift
    return tf.clip_by_value(out, 0.0, PIXEL_MAX)


def sample_beta(gen: tf.random.Generator, n: tf.Tensor, alpha: float) -> tf.Tensor:
    """Beta(alpha, alpha) samples as X / (X + Y) with X, Y ~ Gamma(alpha)."""
    seeds = gen.make_seeds(2)
    x = tf.random.stateless_gamma((n,), seeds[:, 0], alpha=alpha)
    y = tf.random.stateless_gamma((n,), seeds[:, 1], alpha=alpha)
    return x / tf.maximum(x + y, 1e-12)


def mixup(images: tf.Tensor, labels: tf.Tensor, gen: tf.random.Generator, alpha: float
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


def make_augment(augment: AugmentParams, num_classes: int, seed: int) -> Augment | None:
    """The batch augmentation ``augment`` asks for, or None when every part is off.

    The callable maps (images (n, h, w, 3) float in [0, 255], one-hot labels (n, classes))
    to the same shapes and ranges. ``num_classes`` is checked against the labels, so a
    caller that forgot to one-hot encode fails at graph build, not with odd losses.
    """
    if not (augment.flip or augment.crop or augment.color_jitter > 0 or augment.mixup_alpha > 0):
        return None
    gen = tf.random.Generator.from_seed(seed)

    def apply(images: tf.Tensor, labels: tf.Tensor) -> Batch:
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
