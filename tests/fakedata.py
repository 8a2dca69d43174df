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


VOTE_COLUMNS = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown",
                "not_face")
FERPLUS_NAME = {"angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness", "sad": "sadness",
                "surprise": "surprise", "neutral": "neutral"}


def write_votes(root: Path, path: Path) -> Path:
    """A FER+ votes.csv for the images under root/{train,test}: 7 votes for the folder's class and 3 for
    the next class, except that every 10th image is voted not-a-face and every 9th has no row."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", *VOTE_COLUMNS, "match"])
        for i, img in enumerate(sorted(root.glob("*/*/*.jpg"))):
            if i % 9 == 8:
                continue
            label = img.parent.name
            votes = dict.fromkeys(VOTE_COLUMNS, 0)
            if i % 10 == 9:
                votes["not_face"] = 10
            else:
                votes[FERPLUS_NAME[label]] += 7
                votes[FERPLUS_NAME[LABELS[(LABELS.index(label) + 1) % len(LABELS)]]] += 3
            w.writerow([img.relative_to(root).as_posix(), *votes.values(), 1.0])
    return path


def write_other_domain(root: Path, n: int = 21) -> Path:
    """A DiffusionFER look-alike: root/<emotion>/*.png at 96x96."""
    x, y = fake_faces(n, seed=5)
    for i, (img, label) in enumerate(zip(x, y)):
        d = root / LABELS[label]
        d.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(d / f"gen_{i}.png"), cv2.resize(img, (96, 96)))
    return root
