"""Whole image classifiers: raw RGB pixels in, class probabilities out.

Two kinds: the backbone with the head trained on its cached features (the ResNet
fine-tune starts there; prediction and export rebuild that backbone behind the head,
``pipeline.models.rebuild``), and a network trained on the images by itself (a Wide
ResNet, BiT or ResNet-9, from scratch or a weights file of its own) with a Dense top.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import keras

from pipeline.core.params import BiTRecipe, ResNet9Recipe, WRNRecipe
from pipeline.models.flip import flip_averaged
from pipeline.models.weights import WeightsError, check_weights_file

# What every image model's card says it takes.
IMAGE_INPUT = ("raw RGB pixels in [0, 255], resized to image_size x image_size (bilinear, "
               "antialiased) by pipeline.data.input.load_image; the model normalises them itself")


def build_resnet_model(backbone: keras.Model, head: keras.Model, train_bn: bool) -> keras.Model:
    """Raw RGB image -> backbone -> the trained head's softmax, as one functional model.

    The backbone is called with ``training=False`` (keras.io's recipe) so BatchNorm stays
    in inference mode even once unfrozen; with ``train_bn`` it follows fit/predict instead.
    """
    inputs = keras.Input(backbone.input_shape[1:], name="image")
    features = backbone(inputs) if train_bn else backbone(inputs, training=False)
    return keras.Model(inputs, head(features), name=f"{backbone.name}_finetuned")


def build_scratch_model(
    recipe: WRNRecipe | BiTRecipe | ResNet9Recipe, num_classes: int, *, name: str = "model"
) -> keras.Model:
    """Raw RGB image -> [-1, 1] -> WideResNet / BiTResNet / ResNet9 (pooled) -> Dense softmax.

    ``recipe.weights`` is ``none`` or a file: ``.weights.h5`` of this whole model, or for BiT
    an ``.npz`` of published BiT weights for the backbone part. ``name`` is the params
    entry, so that errors name the key to fix (``scratch.<name>.weights``).
    """
    from pipeline.models.bit import BiTResNet
    from pipeline.models.resnet9 import ResNet9
    from pipeline.models.wide_resnet import WideResNet

    shape = (recipe.image_size, recipe.image_size, 3)
    inputs = keras.Input(shape, name="image")
    # Every net trains from scratch on [-1, 1], as BiT's own preprocessing does.
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(inputs)
    if isinstance(recipe, WRNRecipe):
        net = WideResNet(recipe.depth, recipe.width, recipe.dropout, include_top=False,
                         input_shape=shape, pooling="avg")
        init = "glorot_uniform"
    elif isinstance(recipe, ResNet9Recipe):
        net = ResNet9(recipe.width, include_top=False, input_shape=shape, pooling="max")
        init = "glorot_uniform"
    elif isinstance(recipe, BiTRecipe):
        net = BiTResNet(recipe.width, include_top=False, input_shape=shape, pooling="avg")
        init = "zeros"  # BiT's zero head: fine-tuning starts from a uniform prediction
    else:  # a family params.py accepts and this function does not build (docs/model-families.md)
        raise TypeError(f"scratch.{name}.family: no builder for {recipe.family!r} in "
                        "pipeline/models/classifier.py build_scratch_model")
    # A float32 softmax under a mixed-precision policy (Keras' advice).
    outputs = keras.layers.Dense(num_classes, activation="softmax", kernel_initializer=init,
                                 name="predictions", dtype="float32")(net(x))
    model = keras.Model(inputs, outputs, name=f"{net.name}_classifier")
    _load_scratch_weights(model, net, recipe, name)
    return model


def _load_scratch_weights(model: keras.Model, net: keras.Model,
                          recipe: WRNRecipe | BiTRecipe | ResNet9Recipe, name: str) -> None:
    spec = recipe.weights
    if spec == "none":
        return
    key = f"scratch.{name}.weights"  # only scratch entries get here
    path = check_weights_file(key, spec)  # params checked the name; this, the file
    # Keras warns of each layer group it cannot match ("Skipping nested container ...,
    # retain their freshly-initialized weights") before it raises: kept out of the output,
    # and a load that only warns is a partial load, refused.
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always")
        try:
            if path.suffix == ".npz":
                from pipeline.models.bit_npz import load_bit_npz

                load_bit_npz(net, path)
            else:
                model.load_weights(path)
        except (OSError, ValueError, KeyError, EOFError) as err:
            problem = str(err)
        else:
            skipped = [w for w in warned if "freshly-initialized" in str(w.message)]
            problem = str(skipped[0].message) if skipped else ""
    if problem:
        raise WeightsError(f"{key}: {spec!r} does not fit this network (another family, "
                           f"depth, width or number of classes?): {_mismatch(problem)}")


def _mismatch(problem: str) -> str:
    """Keras' load error in a few words: the first layer that differs and both shapes."""
    layer = re.search(r"for object <\w+ name=([^,>]+)", problem)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))",
                       problem)
    if layer and shapes:
        return f"layer {layer[1]} has shape {shapes[1]}, the file {shapes[2]}"
    said = " ".join(problem.split())
    return said if len(said) <= 300 else said[:300] + " ..."


def inference_copy(model: keras.Model, *, flip_tta: bool = False) -> keras.Model:
    """An uncompiled twin of ``model`` for saving, in float32; ``flip_tta``: wrapped to
    average each image's prediction with its mirror image's (``pipeline.models.flip``).

    A compiled model saves its optimizer: Adam's two moments would triple a ResNet50 file
    (~280 MB instead of ~95 MB), and loading it would need this module's schedule class
    registered. The evaluate stage only predicts. A model trained under a mixed-precision
    policy is rebuilt in float32 with its weights (:func:`float32_copy`): the precision a
    model is trained in is no part of what it ships (the inference runtime chooses its
    own), and TFLite and ONNX do not convert a graph of bfloat16 casts.
    """
    with float32_policy():  # what is built here (the flip wrapper) computes in float32
        twin = float32_copy(keras.Model(model.inputs, model.outputs, name=model.name))
        return flip_averaged(twin) if flip_tta else twin


@contextmanager
def float32_policy() -> Iterator[None]:
    """Keras' global dtype policy float32 for the block (a stage set a mixed one to train)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def float32_copy(model: keras.Model) -> keras.Model:
    """``model`` itself when every layer computes in float32, else the same network rebuilt
    from its config with every mixed dtype policy made float32, and its weights (float32
    variables under any policy) copied."""
    config = model.get_config()
    if not _mixed_to_float32(config):
        return model
    copy = model.__class__.from_config(config)
    copy.set_weights(model.get_weights())
    return copy


def _mixed_to_float32(node) -> bool:
    """Make every mixed ``DTypePolicy`` in a model config float32, in place; whether any was."""
    found = False
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy" and str(
                node.get("config", {}).get("name", "")).startswith("mixed_"):
            node["config"]["name"] = "float32"
            return True
        for value in node.values():
            found = _mixed_to_float32(value) or found
    elif isinstance(node, list):
        for value in node:
            found = _mixed_to_float32(value) or found
    return found


def backbone_with_head(backbone: keras.Model, head: keras.Model) -> keras.Model:
    """Raw RGB image -> backbone features -> the head trained on them: the head as an image
    model, for prediction and export (the backbone in inference mode)."""
    inputs = keras.Input(backbone.input_shape[1:], name="image")
    return keras.Model(inputs, head(backbone(inputs, training=False)), name="backbone_head")
