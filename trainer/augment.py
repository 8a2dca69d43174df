"""Batch augmentation with cheap tf ops: flip, small affine, brightness/contrast, erasing, mixup.

Works on float32 batches of raw pixels (B, 48, 48, 1) in 0..255 and soft targets (B, 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tensorflow as tf


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool = True
    rotate_deg: float = 10.0
    scale: float = 0.1
    shift_px: float = 4.0
    brightness: float = 25.0
    contrast: float = 0.25
    erase_prob: float = 0.5
    mixup_alpha: float = 0.0


def _affine(x: tf.Tensor, cfg: AugmentConfig, flip: tf.Tensor) -> tf.Tensor:
    """One projective-transform op per batch: rotation, scale, shift and horizontal flip."""
    b = tf.shape(x)[0]
    size = tf.cast(tf.shape(x)[1], tf.float32)
    angle = tf.random.uniform([b], -1.0, 1.0) * cfg.rotate_deg * math.pi / 180
    scale = 1.0 + tf.random.uniform([b], -cfg.scale, cfg.scale)
    tx, ty = (tf.random.uniform([b], -cfg.shift_px, cfg.shift_px) for _ in range(2))
    sx = tf.where(flip, -1.0, 1.0)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    c = (size - 1) / 2
    # Maps output pixel (u, v) to input (a0*u + a1*v + a2, b0*u + b1*v + b2), about the centre.
    a0, a1 = cos * sx, -sin
    b0, b1 = sin * sx, cos
    a2 = c - a0 * c - a1 * c + tx
    b2 = c - b0 * c - b1 * c + ty
    zeros = tf.zeros([b])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=transforms, output_shape=tf.shape(x)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="REFLECT")


def _photometric(x: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    b = tf.shape(x)[0]
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    contrast = 1.0 + tf.random.uniform([b, 1, 1, 1], -cfg.contrast, cfg.contrast)
    bright = tf.random.uniform([b, 1, 1, 1], -cfg.brightness, cfg.brightness)
    return tf.clip_by_value((x - mean) * contrast + mean + bright, 0.0, 255.0)


def _erase(x: tf.Tensor, cfg: AugmentConfig) -> tf.Tensor:
    """Random erasing: one rectangle (4-25 % of the area) of uniform noise per chosen image."""
    b, h, w = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
    area = tf.random.uniform([b], 0.04, 0.25)
    aspect = tf.exp(tf.random.uniform([b], math.log(0.5), math.log(2.0)))
    eh = tf.sqrt(area * aspect) * tf.cast(h, tf.float32)
    ew = tf.sqrt(area / aspect) * tf.cast(w, tf.float32)
    y0 = tf.random.uniform([b]) * (tf.cast(h, tf.float32) - eh)
    x0 = tf.random.uniform([b]) * (tf.cast(w, tf.float32) - ew)
    rows = tf.cast(tf.range(h), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(w), tf.float32)[None, None, :]
    inside = ((rows >= y0[:, None, None]) & (rows < (y0 + eh)[:, None, None])
              & (cols >= x0[:, None, None]) & (cols < (x0 + ew)[:, None, None]))
    chosen = tf.random.uniform([b, 1, 1]) < cfg.erase_prob
    mask = tf.cast(inside & chosen, tf.float32)[..., None]
    return x * (1 - mask) + tf.random.uniform(tf.shape(x), 0.0, 255.0) * mask


def _mixup(x: tf.Tensor, y: tf.Tensor, alpha: float) -> tuple[tf.Tensor, tf.Tensor]:
    b = tf.shape(x)[0]
    g1 = tf.random.gamma([b], alpha)
    g2 = tf.random.gamma([b], alpha)
    lam = g1 / (g1 + g2)
    lam = tf.maximum(lam, 1 - lam)  # keep the original image dominant
    perm = tf.random.shuffle(tf.range(b))
    lx, ly = lam[:, None, None, None], lam[:, None]
    return lx * x + (1 - lx) * tf.gather(x, perm), ly * y + (1 - ly) * tf.gather(y, perm)


def augment_batch(x: tf.Tensor, y: tf.Tensor, cfg: AugmentConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Augment one batch of raw-pixel images and their soft targets."""
    flip = tf.random.uniform([tf.shape(x)[0]]) < 0.5 if cfg.flip else tf.zeros([tf.shape(x)[0]], tf.bool)
    x = _affine(x, cfg, flip)
    x = _photometric(x, cfg)
    if cfg.erase_prob > 0:
        x = _erase(x, cfg)
    if cfg.mixup_alpha > 0:
        x, y = _mixup(x, y, cfg.mixup_alpha)
    return x, y
