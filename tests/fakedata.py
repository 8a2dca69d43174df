"""Tiny generated FER-2013 look-alikes, in both distributions (folders of JPEGs and fer2013.csv)."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def fake_faces(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n 48x48 uint8 images whose class (n % 7) shows as a bright bar at a class-specific row."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % len(LABELS)
    x = rng.integers(40, 120, (n, 48, 48)).astype(np.uint8)
    for i, label in enumerate(y):
        x[i, 4 + 6 * label: 8 + 6 * label, 8:40] = 230
    return x, y


def write_folders(root: Path, per_class: dict[str, int] | None = None) -> Path:
    """root/train/<emotion>/*.jpg and root/test/<emotion>/*.jpg."""
    for split, n, seed in (("train", 140, 1), ("test", 70, 2)):
        x, y = fake_faces(n, seed)
        for i, (img, label) in enumerate(zip(x, y)):
            d = root / split / LABELS[label]
            d.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(d / f"{split}_{i}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
    return root


def write_csv(path: Path) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["emotion", "pixels", "Usage"])
        for usage, n, seed in (("Training", 140, 1), ("PublicTest", 70, 2), ("PrivateTest", 14, 3)):
            x, y = fake_faces(n, seed)
            for img, label in zip(x, y):
                w.writerow([int(label), " ".join(map(str, img.ravel())), usage])
    return path
