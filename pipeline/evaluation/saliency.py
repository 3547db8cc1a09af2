"""Grad-CAM (Selvaraju et al., 2017): where in an image a convolutional model looked.

The last 4-D activation of the network (found inside nested models: the ResNet inside
the backbone inside the fine-tuned model) weighted by the spatially averaged gradient of
the predicted class's log-probability, rectified, normalised to [0, 1] and resized to the
image. Only for the few images a sheet shows: one forward and backward pass each.
"""

from __future__ import annotations

import keras
import numpy as np


class NoSaliency(ValueError):
    """The model has no 4-D activation to map (a head on features, a dense net)."""


def last_conv_path(model: keras.Model) -> list[str]:
    """Layer names from ``model`` down to its last layer with a 4-D output (batch, H, W, C),
    through nested models; the layers are in the functional graph's topological order."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model) and hasattr(layer, "layers") and layer.layers:
            try:
                return [layer.name, *last_conv_path(layer)]
            except NoSaliency:
                continue
        shape = getattr(layer, "output", None)
        if shape is not None and len(shape.shape) == 4:
            return [layer.name]
    raise NoSaliency(f"{model.name} has no convolutional (4-D) activation")


def tapped(model: keras.Model, path: list[str] | None = None) -> keras.Model:
    """A model with ``model``'s input and outputs (activation at ``path``, probabilities).

    A nested model on the path is replaced by its own tapped copy (recursively), and the
    outer graph re-traced around it with ``keras.models.clone_model``'s call_function, so
    the inner activation becomes reachable from the outer input. Weights are shared."""
    path = path or last_conv_path(model)
    if len(path) == 1:
        return keras.Model(_single(model.inputs),
                           [model.get_layer(path[0]).output, model.output])
    inner = tapped(model.get_layer(path[0]), path[1:])
    taps = []

    def call(layer, *args, **kwargs):
        if layer.name != path[0]:
            return layer(*args, **kwargs)
        activation, out = inner(*args, **kwargs)
        taps.append(activation)
        return out

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer,
                                     call_function=call)
    if len(taps) != 1:
        raise NoSaliency(f"{model.name}: {path[0]} is called {len(taps)} times")
    return keras.Model(_single(clone.inputs), [taps[0], clone.outputs[0]])


def _single(inputs: list):
    # One input as a tensor, not a list of one: called on a batch, Keras warns otherwise.
    return inputs[0] if len(inputs) == 1 else inputs


def grad_cam(cam_model: keras.Model, images: np.ndarray, classes: np.ndarray | None = None
             ) -> np.ndarray:
    """(n, H, W) maps in [0, 1] at the images' size, for ``classes`` (default: predicted)."""
    import tensorflow as tf

    x = tf.convert_to_tensor(images, dtype=tf.float32)
    with tf.GradientTape() as tape:
        activation, proba = cam_model(x, training=False)
        activation = tf.cast(activation, tf.float32)
        proba = tf.cast(proba, tf.float32)
        picked = tf.argmax(proba, axis=1) if classes is None else tf.constant(classes)
        score = tf.math.log(tf.gather(proba, picked, batch_dims=1) + 1e-12)
    grads = tape.gradient(score, activation)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * activation, axis=-1))[..., None]
    cam = tf.image.resize(cam, images.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.maximum(peak, 1e-12), 0.0)


def overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The map in matplotlib's jet colours blended over an RGB [0, 255] image."""
    from matplotlib import colormaps

    heat = colormaps["jet"](cam)[..., :3] * 255.0
    return (1 - alpha) * np.asarray(image, dtype=np.float64) + alpha * heat


def saliency_overlays(model: keras.Model, files: dict[str, str], image_size: int,
                      exif_orientation: bool = True) -> tuple[dict[str, np.ndarray], str]:
    """({key: Grad-CAM overlay of the image as the model saw it}, what the overlays show),
    for an image model and {key: image file}; no overlays and the reason when the model
    cannot give a map. ``exif_orientation``: the decode the model was trained on."""
    from pipeline.data.input import load_image
    from pipeline.models.flip import unflipped

    if not files:
        return {}, ""
    model = unflipped(model)  # a flip-averaged model: the map of the image as it is
    try:
        path = last_conv_path(model)
        cam_model = tapped(model, path)
    except (NoSaliency, ValueError, TypeError) as err:
        return {}, f"no saliency map ({err})"
    images = np.stack([load_image(file, image_size, exif_orientation).numpy()
                       for file in files.values()])
    maps = grad_cam(cam_model, images)
    shown = {key: overlay(image, cam)
             for key, image, cam in zip(files, images, maps, strict=True)}
    return shown, f"Grad-CAM of the predicted class at {path[-1]}"
