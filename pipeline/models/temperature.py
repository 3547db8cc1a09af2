"""Temperature scaling (Guo et al., 2017) as a layer, so a calibrated model saves as one file.

Every model of the pipeline ends in a float32 softmax. Calibrating it divides the logits
by a temperature ``T`` fitted on the validation split; on probabilities that is
``softmax(log(p) / T)``, which keeps the argmax (accuracy is unchanged) and, at ``T = 1``,
gives ``p`` back. The layer carries ``T`` in its config, so ``model.keras``, a SavedModel,
TFLite or ONNX export of a calibrated model give the calibrated probabilities themselves.
"""

from __future__ import annotations

import keras
from keras import ops

# The smallest positive float32 normal: log(0) would give -inf, and -inf / T stays -inf,
# but a whole row of zeros (impossible for a softmax, yet cheap to guard) would give NaN.
_TINY = 1.1754944e-38


@keras.saving.register_keras_serializable(package="pipeline")
class Temperature(keras.layers.Layer):
    """Probabilities in, ``softmax(log(p) / temperature)`` out, in float32."""

    def __init__(self, temperature: float = 1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def call(self, probabilities):
        p = ops.cast(probabilities, "float32")
        return ops.softmax(ops.log(ops.maximum(p, _TINY)) / self.temperature, axis=-1)

    def get_config(self) -> dict:
        return super().get_config() | {"temperature": self.temperature}


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """``model`` followed by :class:`Temperature`; ``model`` itself when ``temperature`` is 1."""
    if temperature == 1.0:
        return model
    inputs = keras.Input(model.input_shape[1:], name=model.inputs[0].name.split(":")[0])
    probabilities = model(inputs)
    # A functional model built with ``outputs=[x]`` returns a list of one: unwrap it, or the
    # layer would see a stacked (1, batch, classes) tensor.
    if isinstance(probabilities, (list, tuple)):
        (probabilities,) = probabilities
    outputs = Temperature(temperature, name="temperature")(probabilities)
    return keras.Model(inputs, outputs, name=f"{model.name}_calibrated")


def temperature_of(model: keras.Model) -> float:
    """The temperature a model applies (1.0 when it has no :class:`Temperature` layer)."""
    for layer in model.layers:
        if isinstance(layer, Temperature):
            return layer.temperature
    return 1.0
