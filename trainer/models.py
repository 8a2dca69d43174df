"""Model builders. Every model takes raw 0-255 gray pixels (48, 48, 1); scaling is its first layer.

- `compact`: the edge model, a residual depthwise-separable CNN with a stride-2 stem, or a
  full-resolution one (where the compute sits decides training and inference speed more than the
  parameter count).
- `reference`: a larger plain VGG-style CNN, for comparison and as a distillation teacher.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import keras
import numpy as np
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


def compact(width: float = 1.0, depth: int | tuple[int, ...] = 2, dropout: float = 0.3,
            stem_stride: int = 2) -> keras.Model:
    """Residual separable CNN: a 3x3 stem, then stages at 24, 12, 6 px with `depth` blocks each (one
    number for all three, or one per stage).

    `stem_stride` 2 runs the stem at 24x24; 1 runs it on the full 48x48 face and lets the first
    block's depthwise layer downsample: fine detail kept one layer longer for ~3 % more MACs
    (measured int8 on x86: ~20 % more time a pass).
    """
    if stem_stride not in (1, 2):
        raise ValueError(f"stem_stride must be 1 or 2, not {stem_stride}")
    depths = stage_depths(depth)
    w = lambda c: max(8, int(round(c * width / 8)) * 8)  # noqa: E731
    inp, x = _inputs()
    x = layers.Conv2D(w(32), 3, strides=stem_stride, padding="same", use_bias=False)(x)
    x = _bn_relu(x)
    for stage, (filters, blocks) in enumerate(zip((64, 128, 256), depths)):
        for block in range(blocks):
            downsample = block == 0 and (stage > 0 or stem_stride == 1)
            x = _separable_block(x, w(filters), stride=2 if downsample else 1)
    d = str(depths[0]) if len(set(depths)) == 1 else "-".join(map(str, depths))
    name = f"compact_w{width:g}_d{d}" + ("_s1" if stem_stride == 1 else "")
    return keras.Model(inp, _head(x, dropout), name=name)


def stage_depths(depth: int | tuple[int, ...] | list[int]) -> tuple[int, int, int]:
    """Blocks per stage of `compact`: one number for all three stages, or three."""
    depths = (depth,) if isinstance(depth, int) else tuple(depth)
    if len(depths) == 1:
        depths *= 3
    if len(depths) != 3 or min(depths) < 1:
        raise ValueError(f"depth must be one number or three (blocks per stage), each at least 1, not {depth}")
    return depths  # type: ignore[return-value]


def grow(model: keras.Model, donor: keras.Model) -> None:
    """Warm-start a deeper `compact` model from a shallower one of the same width and stem, unchanged in
    what it computes: the donor's blocks keep their place at the start of each stage and the extra
    blocks begin as identities (their last BatchNormalization scaled to zero, so the residual adds nothing).
    """
    new, old = _compact_shape(model.name), _compact_shape(donor.name)
    if not new or not old or new[0] != old[0] or new[2] != old[2] or any(o > n for o, n in zip(old[1], new[1])):
        raise ValueError(f"{donor.name} cannot grow into {model.name}: both must be compact nets of one width "
                         "and stem, the donor no deeper in any stage")
    layers_new, layers_old = _weighted(model), _weighted(donor)
    for dst, src in zip(layers_new[:2], layers_old[:2]):  # the stem
        dst.set_weights(src.get_weights())
    start_new = start_old = 2
    for blocks_new, blocks_old in zip(new[1], old[1]):
        for b in range(blocks_new):
            dst = layers_new[start_new + 4 * b: start_new + 4 * b + 4]
            if b < blocks_old:
                for d, s in zip(dst, layers_old[start_old + 4 * b: start_old + 4 * b + 4]):
                    d.set_weights(s.get_weights())
            else:
                dst[-1].gamma.assign(np.zeros(dst[-1].gamma.shape, "float32"))
        start_new, start_old = start_new + 4 * blocks_new, start_old + 4 * blocks_old
    layers_new[-1].set_weights(layers_old[-1].get_weights())  # the logits


def _compact_shape(name: str) -> tuple[str, tuple[int, int, int], bool] | None:
    """(width, blocks per stage, full-resolution stem) from a compact model's name."""
    m = re.fullmatch(r"compact_w([0-9.]+)_d([0-9-]+)(_s1)?", name)
    return (m[1], stage_depths([int(d) for d in m[2].split("-")]), bool(m[3])) if m else None


def _weighted(model: keras.Model) -> list[layers.Layer]:
    return [layer for layer in model.layers if layer.weights]


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
