"""The embedded demo data set: five classes of synthetic JPEGs, byte-for-byte reproducible.

The pipeline must run end to end without a download, so it draws its own data
set. The output has exactly the layout of a user's own data (one sub-folder of
JPEGs per class) so that every later stage runs the same code on both.

The task is meant to be learnable by a CNN but not by a glance at the pixels:
each class pairs a shape with a texture, while colour, position, scale,
rotation, background, clutter, blur, noise and JPEG artefacts all vary at
random. A linear model on raw downsampled pixels stays well short of 100%.

Every image has its own random stream, seeded from (seed, class index, image
index), so image 7 of ``star`` is the same whether 10 or 1000 are drawn.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from pipeline.core.io import atomic_dir

CLASSES: tuple[str, ...] = ("circle", "square", "triangle", "star", "stripes")

# Shapes are drawn this many times larger and box-filtered down: anti-aliased
# edges without depending on ImageDraw's own (version-dependent) anti-aliasing.
_SUPERSAMPLE = 4

Array = np.ndarray
Rng = np.random.Generator


# --------------------------------------------------------------------------- geometry


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (x, y), cached: every image of a run has the same size."""
    axis = np.arange(size, dtype=np.float32) + 0.5
    xx, yy = np.meshgrid(axis, axis)
    xx.flags.writeable = False
    yy.flags.writeable = False
    return xx, yy


def _local(size: int, cx: float, cy: float, angle: float) -> tuple[Array, Array]:
    """Pixel coordinates in the object's own rotated frame, so textures turn with it."""
    xx, yy = _grid(size)
    dx, dy = xx - cx, yy - cy
    c, s = math.cos(angle), math.sin(angle)
    return dx * c + dy * s, -dx * s + dy * c


def _place(unit: Array, cx: float, cy: float, radius: float, angle: float) -> Array:
    """Map vertices drawn around the origin with radius ~1 into image coordinates."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return unit @ rot.T * radius + np.array([cx, cy])


def _ellipse(aspect: float, n: int = 96) -> Array:
    t = np.linspace(0.0, 2.0 * math.pi, n, endpoint=False)
    return np.stack([np.cos(t), aspect * np.sin(t)], axis=1)


def _rectangle(aspect: float) -> Array:
    # Scaled so that its area roughly matches a circle of the same radius.
    h = 0.85
    return np.array([[-h, -h * aspect], [h, -h * aspect], [h, h * aspect], [-h, h * aspect]])


def _triangle(rng: Rng) -> Array:
    """A near-equilateral triangle; vertex jitter keeps it from being one template."""
    t = np.array([-math.pi / 2, math.pi / 6, 5 * math.pi / 6]) + rng.uniform(-0.2, 0.2, 3)
    r = rng.uniform(0.9, 1.15, 3)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _star(inner: float, points: int = 5) -> Array:
    t = np.arange(2 * points) * math.pi / points - math.pi / 2
    r = np.where(np.arange(2 * points) % 2 == 0, 1.1, 1.1 * inner)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _mask(size: int, polygon: Array) -> Array:
    """Anti-aliased coverage in [0, 1] of a polygon given in image coordinates."""
    big = size * _SUPERSAMPLE
    canvas = Image.new("L", (big, big), 0)
    points = [(float(x), float(y)) for x, y in polygon * _SUPERSAMPLE]
    ImageDraw.Draw(canvas).polygon(points, fill=255)
    small = canvas.resize((size, size), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32)[..., None] / 255.0


# --------------------------------------------------------------------------- colour


def _colour(rng: Rng) -> Array:
    return rng.uniform(0.0, 255.0, 3).astype(np.float32)


def _contrasting(rng: Rng, against: Array, min_dist: float) -> Array:
    """A random colour at least ``min_dist`` (RGB distance) from ``against``.

    Rejection sampling keeps the object visible without fixing its colour, and
    it draws from the image's own stream, so it stays deterministic.
    """
    for _ in range(50):
        colour = _colour(rng)
        if float(np.linalg.norm(colour - against)) >= min_dist:
            return colour
    return (255.0 - against).astype(np.float32)


def _shifted(rng: Rng, colour: Array) -> Array:
    """A lighter or darker variant of ``colour``: the second tone of a texture."""
    delta = rng.uniform(45.0, 110.0)
    sign = 1.0 if colour.mean() < 128 else -1.0
    return np.clip(colour + sign * delta, 0.0, 255.0).astype(np.float32)


def _background(rng: Rng, size: int) -> Array:
    """A linear gradient between two random colours at a random angle."""
    xx, yy = _grid(size)
    angle = rng.uniform(0.0, 2.0 * math.pi)
    t = ((xx - size / 2) * math.cos(angle) + (yy - size / 2) * math.sin(angle)) / size + 0.5
    c0, c1 = _colour(rng), _colour(rng)
    return c0 + (c1 - c0) * np.clip(t, 0.0, 1.0)[..., None]


def _clutter(rng: Rng, background: Array) -> Array:
    """Draw 0-3 short lines and small arcs under the object: edges that mean nothing."""
    size = background.shape[0]
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(0, 4))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        width = int(rng.integers(1, max(2, size // 40) + 1))
        x0, y0 = rng.uniform(0, size, 2)
        length = rng.uniform(0.1, 0.25) * size
        angle = rng.uniform(0.0, 2.0 * math.pi)
        if rng.random() < 0.5:
            x1, y1 = x0 + length * math.cos(angle), y0 + length * math.sin(angle)
            draw.line([(x0, y0), (x1, y1)], fill=colour, width=width)
        else:
            box = [x0 - length / 2, y0 - length / 2, x0 + length / 2, y0 + length / 2]
            start = float(rng.uniform(0, 360))
            draw.arc(box, start, start + float(rng.uniform(60, 150)), fill=colour, width=width)
    return np.asarray(image, dtype=np.float32)


# --------------------------------------------------------------------------- textures


def _two_tone(pattern: Array, a: Array, b: Array) -> Array:
    return a + (b - a) * pattern[..., None]


def _checker(u: Array, v: Array, period: float) -> Array:
    return ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)


def _dots(u: Array, v: Array, period: float, radius: float) -> Array:
    du = np.mod(u, period) - period / 2
    dv = np.mod(v, period) - period / 2
    return np.clip(radius - np.hypot(du, dv) + 0.5, 0.0, 1.0)


def _stripes(u: Array, period: float) -> Array:
    # A steep sine clipped to a soft square wave: crisp stripes without aliasing.
    return np.clip(0.5 + 2.0 * np.sin(2.0 * math.pi * u / period), 0.0, 1.0)


# --------------------------------------------------------------------------- classes


class _Object:
    """Where the object sits: centre, radius and rotation, all in pixels / radians."""

    def __init__(self, rng: Rng, size: int) -> None:
        self.radius = rng.uniform(0.2, 0.36) * size
        margin = 0.8 * self.radius  # a little may fall outside the frame
        self.cx = rng.uniform(margin, size - margin)
        self.cy = rng.uniform(margin, size - margin)
        self.angle = rng.uniform(0.0, 2.0 * math.pi)

    def polygon(self, unit: Array) -> Array:
        return _place(unit, self.cx, self.cy, self.radius, self.angle)


Painter = Callable[[Rng, int, _Object, Array], tuple[Array, Array]]


def _paint_circle(rng: Rng, size: int, obj: _Object, fill: Array) -> tuple[Array, Array]:
    """Circle, shaded like a lit sphere: smooth, with a highlight off-centre."""
    mask = _mask(size, obj.polygon(_ellipse(rng.uniform(0.85, 1.0))))
    xx, yy = _grid(size)
    hx = obj.cx + rng.uniform(-0.5, 0.5) * obj.radius
    hy = obj.cy + rng.uniform(-0.5, 0.5) * obj.radius
    dist = np.clip(np.hypot(xx - hx, yy - hy) / (1.6 * obj.radius), 0.0, 1.0)
    strength = rng.uniform(0.25, 0.6)
    shade = 1.0 + strength * (0.5 - dist)
    return mask, np.clip(fill * shade[..., None], 0.0, 255.0)


def _paint_square(rng: Rng, size: int, obj: _Object, fill: Array) -> tuple[Array, Array]:
    """Square (or near-square rectangle) with a checkerboard that turns with it."""
    mask = _mask(size, obj.polygon(_rectangle(rng.uniform(0.8, 1.0))))
    u, v = _local(size, obj.cx, obj.cy, obj.angle)
    period = obj.radius * rng.uniform(0.25, 0.5)
    return mask, _two_tone(_checker(u, v, period), fill, _shifted(rng, fill))


def _paint_triangle(rng: Rng, size: int, obj: _Object, fill: Array) -> tuple[Array, Array]:
    """Triangle with a grid of polka dots."""
    mask = _mask(size, obj.polygon(_triangle(rng)))
    u, v = _local(size, obj.cx, obj.cy, obj.angle + rng.uniform(-0.3, 0.3))
    period = max(5.0, obj.radius * rng.uniform(0.25, 0.4))
    dots = _dots(u, v, period, period * rng.uniform(0.2, 0.32))
    return mask, _two_tone(dots, fill, _shifted(rng, fill))


def _paint_star(rng: Rng, size: int, obj: _Object, fill: Array) -> tuple[Array, Array]:
    """Five-pointed star, flat colour with a fine grain: no regular texture."""
    mask = _mask(size, obj.polygon(_star(rng.uniform(0.38, 0.52))))
    grain = rng.normal(0.0, rng.uniform(6.0, 16.0), (size, size, 1)).astype(np.float32)
    return mask, np.clip(fill + grain, 0.0, 255.0)


def _paint_stripes(rng: Rng, size: int, obj: _Object, fill: Array) -> tuple[Array, Array]:
    """Parallel stripes on a large ellipse or rectangle: the class is the texture, not
    the outline, which overlaps the circle and square classes on purpose."""
    outline = _ellipse if rng.random() < 0.5 else _rectangle
    unit = outline(rng.uniform(0.6, 1.0))
    mask = _mask(size, _place(unit * 1.15, obj.cx, obj.cy, obj.radius, obj.angle))
    u, _ = _local(size, obj.cx, obj.cy, rng.uniform(0.0, math.pi))
    period = max(5.0, obj.radius * rng.uniform(0.2, 0.45))
    second = _contrasting(rng, fill, 80.0)
    return mask, _two_tone(_stripes(u, period), fill, second)


_PAINTERS: dict[str, Painter] = {
    "circle": _paint_circle,
    "square": _paint_square,
    "triangle": _paint_triangle,
    "star": _paint_star,
    "stripes": _paint_stripes,
}


# --------------------------------------------------------------------------- images


def _rng(seed: int, class_index: int, image_index: int) -> Rng:
    """One independent stream per image: adding images never changes existing ones."""
    return np.random.default_rng([seed, class_index, image_index])


def render(name: str, size: int, rng: Rng) -> Image.Image:
    """Draw one RGB image of class ``name``; all randomness comes from ``rng``."""
    background = _clutter(rng, _background(rng, size))
    obj = _Object(rng, size)
    centre = background[int(obj.cy) % size, int(obj.cx) % size]
    fill = _contrasting(rng, centre, 70.0)
    mask, texture = _PAINTERS[name](rng, size, obj, fill)
    pixels = background * (1.0 - mask) + texture * mask
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0) * size / 128))
    noise = rng.normal(0.0, rng.uniform(2.0, 8.0), (size, size, 3))
    noisy = np.asarray(image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")


def _write_jpeg(image: Image.Image, path: Path, quality: int) -> None:
    """Save with fixed encoder settings and no metadata, so equal pixels give equal bytes."""
    image.save(path, format="JPEG", quality=quality, optimize=False, progressive=False)


def _check(images_per_class: int, image_size: int, jpeg_quality: int) -> None:
    if images_per_class < 1:
        raise ValueError(f"images_per_class must be >= 1, got {images_per_class}")
    if image_size < 16:
        raise ValueError(f"image_size must be >= 16 px, got {image_size}")
    if not 1 <= jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be in 1..100, got {jpeg_quality}")


def generate(
    out_dir: str | Path,
    images_per_class: int,
    image_size: int,
    seed: int,
    jpeg_quality: int = 90,
) -> dict[str, int]:
    """Write ``out_dir/<class>/<class>_0001.jpg ...`` and return the count per class.

    The folder appears only once complete (``atomic_dir``): DVC caches whatever
    an interrupted stage leaves behind, and a half-drawn data set would be
    silently trained on. Same arguments, same bytes.
    """
    _check(images_per_class, image_size, jpeg_quality)
    counts: dict[str, int] = {}
    with atomic_dir(out_dir) as tmp:
        for class_index, name in enumerate(CLASSES):
            folder = tmp / name
            folder.mkdir()
            for i in range(images_per_class):
                image = render(name, image_size, _rng(seed, class_index, i))
                _write_jpeg(image, folder / f"{name}_{i + 1:04d}.jpg", jpeg_quality)
            counts[name] = images_per_class
    return counts
