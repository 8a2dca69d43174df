"""Post-training full-integer quantization (int8 in, int8 out) of a trained Keras model."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from trainer.evaluate import checkpoint
from trainer.labels import IMAGE_SIZE, LABELS
from trainer.quiet import output_silenced


class QuantizeError(Exception):
    """A model that cannot be quantized, with a one-line message."""


def load_fer_model(path: Path) -> keras.Model:
    """Load a .keras file (or a run folder's best.keras) and check it is a fer-train model."""
    path = checkpoint(Path(path))
    if not path.is_file():
        raise QuantizeError(f"no model at {path} (give a fer-train run folder or its .keras file)")
    try:
        model = keras.models.load_model(path)
    except Exception as e:  # keras raises many types for foreign or corrupt files
        raise QuantizeError(f"cannot load {path} as a Keras model: {str(e).splitlines()[0]}") from None
    if tuple(model.input_shape[1:]) != (IMAGE_SIZE, IMAGE_SIZE, 1) or model.output_shape[-1] != len(LABELS):
        raise QuantizeError(f"{path} is not a fer-train model: input {model.input_shape}, output "
                            f"{model.output_shape}; expected (None, {IMAGE_SIZE}, {IMAGE_SIZE}, 1) -> {len(LABELS)} logits")
    if not any(layer.name == "normalize" for layer in model.layers):
        raise QuantizeError(f"{path} is not a fer-train model: it has no 'normalize' layer taking raw 0-255 pixels")
    return model


def with_flip_tta(model: keras.Model) -> keras.Model:
    """Wrap `model` so it returns the mean logits of the image and its mirror image.

    Both go through the model as one batch of 2N, so the weights are stored once.
    """
    inp = keras.Input(model.input_shape[1:], name="pixels")
    pair = keras.layers.Lambda(lambda t: tf.concat([t, tf.reverse(t, axis=[2])], 0), name="mirror")(inp)
    logits = model(pair)
    out = keras.layers.Lambda(lambda z: tf.reduce_mean(tf.reshape(z, (2, -1, len(LABELS))), 0),
                              name="flip_tta")(logits)
    return keras.Model(inp, out, name=f"{model.name}_flip")


def with_temperature(model: keras.Model, temperature: float) -> keras.Model:
    """Wrap `model` so its logits are divided by `temperature`: the softmax of what it returns is calibrated."""
    inp = keras.Input(model.input_shape[1:], name="pixels")
    out = keras.layers.Rescaling(1 / temperature, name="temperature")(model(inp))
    return keras.Model(inp, out, name=model.name)


def to_int8_tflite(model: keras.Model, representative: np.ndarray) -> bytes:
    """Convert with int8 weights, activations, input and output, calibrated on `representative`."""

    def samples():
        for img in representative:
            yield [img[None, ..., None].astype(np.float32)]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = samples
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    with output_silenced():  # the SavedModel export's listing and the converter's C++ logs
        return converter.convert()
