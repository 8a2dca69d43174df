"""Model builders. Every model takes raw 0-255 gray pixels (48, 48, 1); scaling is its first layer.

- `compact`: the edge model, a residual depthwise-separable CNN with a stride-2 stem, or a
  full-resolution one (where the compute sits decides training and inference speed more than the
  parameter count).
- `reference`: a larger plain VGG-style CNN, for comparison and as a distillation teacher.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

from trainer.labels import IMAGE_SIZE, LABELS


def _bn_relu(x):
    return layers.ReLU()(layers.BatchNormalization()(x))


def _separable_block(x, filters: int, stride: int = 1):
    """Depthwise 3x3 -> BN -> ReLU -> pointwise -> BN (+ identity shortcut) -> ReLU."""
    shortcut = x
    y = layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False)(x)
    y = _bn_relu(y)
    y = layers.Conv2D(filters, 1, use_bias=False)(y)
    y = layers.BatchNormalization()(y)
    if stride == 1 and shortcut.shape[-1] == filters:
        y = layers.Add()([shortcut, y])
    return layers.ReLU()(y)


def _inputs() -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inp = keras.Input((IMAGE_SIZE, IMAGE_SIZE, 1), name="pixels")
    return inp, layers.Rescaling(1 / 127.5, offset=-1.0, name="normalize")(inp)


def _head(x, dropout: float):
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    return layers.Dense(len(LABELS), name="logits", dtype="float32")(x)  # float32 logits under any precision


def compact(width: float = 1.0, depth: int = 2, dropout: float = 0.3, stem_stride: int = 2) -> keras.Model:
    """Residual separable CNN: a 3x3 stem, then stages at 24, 12, 6 px with `depth` blocks each.

    `stem_stride` 2 runs the stem at 24x24; 1 runs it on the full 48x48 face and lets the first
    block's depthwise layer downsample: fine detail kept one layer longer for ~3 % more MACs
    (measured int8 on x86: ~20 % more time a pass).
    """
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, not {stem_stride}")
    w = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731
    inp, x = _inputs()
    x = layers.Conv2D(w(32), 3, strides=stem_stride, padding="same", use_bias=False)(x)
    x = _bn_relu(x)
    for stage, filters in enumerate((64, 128, 256)):
        for block in range(depth):
            downsample = block == 0 and (stage > 0 or stem_stride == 1)
            x = _separable_block(x, w(filters), stride=2 if downsample else 1)
    name = f"compact_w{width:g}_d{depth}" + ("_s1" if stem_stride == 1 else "")
    return keras.Model(inp, _head(x, dropout), name=name)


def reference(width: float = 1.0, dropout: float = 0.4) -> keras.Model:
    """VGG-style CNN with full 3x3 convolutions (~1.2 M params at width 1)."""
    w = lambda c: int(c * width)  # noqa: E731
    inp, x = _inputs()
    for filters in (64, 128, 256):
        for _ in range(2):
            x = _bn_relu(layers.Conv2D(w(filters), 3, padding="same", use_bias=False)(x))
        x = layers.MaxPooling2D()(x)
    x = _bn_relu(layers.Conv2D(w(256), 3, padding="same", use_bias=False)(x))
    return keras.Model(inp, _head(x, dropout), name=f"reference_w{width:g}")


ARCHITECTURES: dict[str, Callable[..., keras.Model]] = {"compact": compact, "reference": reference}


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass, counted over conv, depthwise and dense layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c = layer.output.shape
            total += h * w * c * layer.kernel_size[0] * layer.kernel_size[1] * layer.input.shape[-1]
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)
